//! The archive files: gzip-compressed CSV (with a header row) that
//! PostgreSQL loads back with `COPY … FROM STDIN (FORMAT csv, HEADER MATCH)`,
//! and a JSON manifest beside it that describes it.
//!
//! A file is verified by reading it back whole: the SHA-256 of its bytes
//! must match the manifest, it must decompress to the end (gzip's own CRC
//! catches corruption and truncation), and the CSV records must number the
//! manifest's rows plus the header.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};
use flate2::read::GzDecoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::lifecycle::LifecycleError;

/// The manifest's `format` value.
pub const FORMAT: &str = "bisman-partition-archive";
/// The ledger's `format` value: what the data file holds.
pub const ENCODING: &str = "csv+gzip";

/// A column of the archived table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its SQL type (`format_type`).
    #[serde(rename = "type")]
    pub sql_type: String,
}

/// What an archive holds, written beside it as `<name>.manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// Manifest version.
    pub version: u32,
    /// Always [`ENCODING`].
    pub encoding: String,
    /// The managed (base) table.
    pub table: String,
    /// The partitioned table the month belonged to.
    pub parent_table: String,
    /// The partition.
    pub partition: String,
    /// The partition key.
    pub partition_column: String,
    /// Inclusive lower bound (naive UTC).
    pub range_start: NaiveDateTime,
    /// Exclusive upper bound.
    pub range_end: NaiveDateTime,
    /// Rows in the file.
    pub row_count: i64,
    /// The data file's name, in the manifest's folder.
    pub data_file: String,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// `bisman_rows_digest` of the rows it holds (manifest version 2): the
    /// checksum a month must still have, under the drop's lock, to be
    /// dropped on this archive; checked again when it is restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_checksum: Option<String>,
    /// The columns, in file order.
    pub columns: Vec<Column>,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// `server_version` of the PostgreSQL it came from.
    pub server_version: String,
    /// How to load it by hand.
    pub load_with: String,
}

impl Manifest {
    /// The manifest's path for a data file `<dir>/<stem>.csv.gz`.
    pub fn path_for(data: &Path) -> PathBuf {
        let name = data
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let stem = name.strip_suffix(".csv.gz").unwrap_or(name);
        data.with_file_name(format!("{stem}.manifest.json"))
    }

    /// Reads a manifest; `path` may also name its data file.
    pub fn read(path: &Path) -> Result<(Manifest, PathBuf), LifecycleError> {
        let path = if path.to_string_lossy().ends_with(".csv.gz") {
            Self::path_for(path)
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read(&path).map_err(LifecycleError::io(&path))?;
        let manifest: Manifest =
            serde_json::from_slice(&text).map_err(|source| LifecycleError::Manifest {
                path: path.clone(),
                source,
            })?;
        if manifest.format != FORMAT || manifest.encoding != ENCODING {
            return Err(bad(&path, "not a bisman partition archive manifest"));
        }
        if manifest.data_file.contains(['/', '\\']) || manifest.data_file.starts_with('.') {
            return Err(bad(&path, "data_file must be a plain file name"));
        }
        Ok((manifest, path))
    }

    /// Writes the manifest to `path` (via a temporary file, a rename and a
    /// sync of the folder, so that a crash leaves either no manifest or the
    /// whole one). Nothing is left behind when it fails.
    pub fn write(&self, path: &Path) -> Result<(), LifecycleError> {
        let tmp = path.with_extension("json.partial");
        let text = serde_json::to_vec_pretty(self).map_err(|source| LifecycleError::Manifest {
            path: path.to_path_buf(),
            source,
        })?;
        let written = (|| {
            let mut f = File::create(&tmp).map_err(LifecycleError::io(&tmp))?;
            f.write_all(&text).map_err(LifecycleError::io(&tmp))?;
            f.sync_all().map_err(LifecycleError::io(&tmp))?;
            std::fs::rename(&tmp, path).map_err(LifecycleError::io(path))?;
            sync_dir(path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    /// The data file's path, beside the manifest at `manifest_path`.
    pub fn data_path(&self, manifest_path: &Path) -> PathBuf {
        manifest_path.with_file_name(&self.data_file)
    }
}

/// Syncs the folder holding `path`, so that a rename into it survives a
/// crash (a file's own fsync does not cover its directory entry).
pub(crate) fn sync_dir(path: &Path) -> Result<(), LifecycleError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(LifecycleError::io(dir))
}

fn bad(path: &Path, reason: impl Into<String>) -> LifecycleError {
    LifecycleError::BadArchive {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// What reading a data file back found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
    /// CSV records after the header.
    pub rows: i64,
}

/// Reads `path` whole: hash, decompress, count CSV records.
pub fn inspect(path: &Path) -> Result<FileFacts, LifecycleError> {
    let file = File::open(path).map_err(LifecycleError::io(path))?;
    let mut hashing = Hashing::new(BufReader::new(file));
    let mut counter = CsvRecords::default();
    {
        let mut gz = GzDecoder::new(&mut hashing);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = gz
                .read(&mut buf)
                .map_err(|e| bad(path, format!("truncated or corrupt (gzip: {e})")))?;
            if n == 0 {
                break;
            }
            counter.feed(&buf[..n]);
        }
    }
    // Whatever follows the gzip stream still belongs to the file's checksum.
    std::io::copy(&mut hashing, &mut std::io::sink()).map_err(LifecycleError::io(path))?;
    let records = counter.finish();
    if records == 0 {
        return Err(bad(path, "no CSV header: empty or truncated"));
    }
    Ok(FileFacts {
        sha256: hex::encode(hashing.hasher.finalize()),
        bytes: hashing.bytes,
        rows: records - 1,
    })
}

/// Checks a data file against its manifest.
pub fn verify(manifest: &Manifest, data: &Path) -> Result<FileFacts, LifecycleError> {
    let facts = inspect(data)?;
    if facts.sha256 != manifest.sha256 {
        return Err(bad(
            data,
            format!(
                "SHA-256 {} does not match the manifest's {}: the file was changed or damaged",
                facts.sha256, manifest.sha256
            ),
        ));
    }
    if facts.rows != manifest.row_count {
        return Err(bad(
            data,
            format!(
                "holds {} rows but the manifest says {}",
                facts.rows, manifest.row_count
            ),
        ));
    }
    Ok(facts)
}

/// A reader that hashes and counts what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R> Hashing<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Counts CSV records as PostgreSQL writes them: a newline ends a record
/// unless it is inside double quotes (a doubled quote toggles twice).
#[derive(Debug, Default)]
pub(crate) struct CsvRecords {
    records: i64,
    in_quotes: bool,
    pending: bool,
}

impl CsvRecords {
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match b {
                b'"' => {
                    self.in_quotes = !self.in_quotes;
                    self.pending = true;
                }
                b'\n' if !self.in_quotes => {
                    self.records += 1;
                    self.pending = false;
                }
                _ => self.pending = true,
            }
        }
    }

    /// Records ended by a newline so far.
    pub(crate) fn complete(&self) -> i64 {
        self.records
    }

    pub(crate) fn finish(self) -> i64 {
        self.records + i64::from(self.pending)
    }
}

/// Writes the compressed data file while hashing it.
pub(crate) struct Writer {
    path: PathBuf,
    tmp: PathBuf,
    gz: flate2::write::GzEncoder<HashingWrite<File>>,
}

impl Writer {
    /// Starts `path` (written as `path.partial` until [`Writer::finish`]).
    pub(crate) fn create(path: &Path) -> Result<Self, LifecycleError> {
        let tmp = path.with_extension("gz.partial");
        let file = File::create(&tmp).map_err(LifecycleError::io(&tmp))?;
        let gz = flate2::write::GzEncoder::new(
            HashingWrite {
                inner: file,
                hasher: Sha256::new(),
                bytes: 0,
            },
            flate2::Compression::fast(),
        );
        Ok(Self {
            path: path.to_path_buf(),
            tmp,
            gz,
        })
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<(), LifecycleError> {
        self.gz
            .write_all(bytes)
            .map_err(LifecycleError::io(&self.tmp))
    }

    /// Flushes, syncs, renames into place and syncs the folder; returns
    /// (sha256, bytes). When any of it fails the partial file is removed.
    pub(crate) fn finish(self) -> Result<(String, u64), LifecycleError> {
        let (path, tmp) = (self.path, self.tmp);
        let done = (|| {
            let inner = self.gz.finish().map_err(LifecycleError::io(&tmp))?;
            inner.inner.sync_all().map_err(LifecycleError::io(&tmp))?;
            std::fs::rename(&tmp, &path).map_err(LifecycleError::io(&path))?;
            sync_dir(&path)?;
            Ok((hex::encode(inner.hasher.finalize()), inner.bytes))
        })();
        if done.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        done
    }

    /// Removes the partial file after a failure.
    pub(crate) fn discard(self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

pub(crate) struct HashingWrite<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for HashingWrite<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(chunks: &[&[u8]]) -> i64 {
        let mut c = CsvRecords::default();
        for ch in chunks {
            c.feed(ch);
        }
        c.finish()
    }

    #[test]
    fn counts_records_with_quoted_newlines() {
        assert_eq!(count(&[b"id,text\n1,a\n"]), 2);
        assert_eq!(
            count(&[b"id,text\n1,\"line\nbreak\"\n2,\"x\"\"\n\"\"y\"\n"]),
            3
        );
        // Split anywhere, same answer.
        assert_eq!(count(&[b"id,t\n1,\"a\n", b"b\"\n2,c"]), 3);
        assert_eq!(count(&[b""]), 0);
    }

    #[test]
    fn a_failed_finish_leaves_no_partial_file() {
        let dir = std::env::temp_dir().join(format!("bisman-partial-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // The destination is a folder: the rename fails.
        let target = dir.join("m-1.csv.gz");
        std::fs::create_dir_all(target.join("occupied")).unwrap();
        let mut w = Writer::create(&target).unwrap();
        w.write(b"id\n1\n").unwrap();
        assert!(w.finish().is_err());
        assert!(
            !dir.join("m-1.csv.gz.partial").exists(),
            "the partial file is removed"
        );
        let manifest = dir.join("m-2.manifest.json");
        std::fs::create_dir_all(manifest.join("occupied")).unwrap();
        let m: Manifest = serde_json::from_value(serde_json::json!({
            "format": FORMAT, "version": 2, "encoding": ENCODING, "table": "t", "parent_table": "t",
            "partition": "t_p2020_01", "partition_column": "c", "range_start": "2020-01-01T00:00:00",
            "range_end": "2020-02-01T00:00:00", "row_count": 1, "data_file": "m-1.csv.gz",
            "sha256": "00", "bytes": 1, "columns": [], "created_at": "2020-01-01T00:00:00Z",
            "server_version": "15", "load_with": ""
        }))
        .unwrap();
        assert!(m.write(&manifest).is_err());
        assert!(!dir.join("m-2.manifest.json.partial").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn manifest_path_sits_beside_the_data() {
        assert_eq!(
            Manifest::path_for(Path::new("a/t_p2026_01-20260101T000000Z.csv.gz")),
            PathBuf::from("a/t_p2026_01-20260101T000000Z.manifest.json")
        );
    }
}
