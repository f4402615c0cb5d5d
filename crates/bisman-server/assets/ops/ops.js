// Bisman ops page: small conveniences on top of server-rendered HTML.
// Every page works without this script.
"use strict";

// "3 min ago" beside every <time datetime>.
function ago(date) {
  const s = Math.round((Date.now() - date.getTime()) / 1000);
  if (!Number.isFinite(s)) return "";
  const abs = Math.abs(s);
  const [n, unit] =
    abs < 90 ? [abs, "s"] :
    abs < 5400 ? [Math.round(abs / 60), "min"] :
    abs < 172800 ? [Math.round(abs / 3600), "h"] :
    [Math.round(abs / 86400), "d"];
  return s >= 0 ? `${n} ${unit} ago` : `in ${n} ${unit}`;
}

function markTimes() {
  for (const t of document.querySelectorAll("time[datetime]")) {
    const text = ago(new Date(t.getAttribute("datetime")));
    if (!text) continue;
    const span = document.createElement("span");
    span.className = "ago";
    span.textContent = `(${text})`;
    t.after(span);
  }
}

// A <select data-autosubmit> submits its form when changed.
function autosubmit() {
  for (const s of document.querySelectorAll("select[data-autosubmit]")) {
    s.addEventListener("change", () => s.form.submit());
  }
}

// A form with data-busy disables its button while the request runs.
function busyForms() {
  for (const f of document.querySelectorAll("form[data-busy]")) {
    f.addEventListener("submit", () => {
      const b = f.querySelector("button[type=submit]");
      if (b) {
        b.disabled = true;
        b.textContent = f.dataset.busy;
      }
    });
  }
}

// The cache page's "refresh every 10 s" switch (remembered for the tab).
function autoRefresh() {
  const box = document.getElementById("auto-refresh");
  if (!box) return;
  const key = "bisman-ops-auto-refresh";
  box.checked = sessionStorage.getItem(key) === "1";
  let timer = null;
  const arm = () => {
    clearTimeout(timer);
    if (box.checked) timer = setTimeout(() => location.reload(), 10000);
  };
  box.addEventListener("change", () => {
    sessionStorage.setItem(key, box.checked ? "1" : "0");
    arm();
  });
  arm();
}

document.addEventListener("DOMContentLoaded", () => {
  markTimes();
  autosubmit();
  busyForms();
  autoRefresh();
});
