//! Node-API link settings for the addon (macOS needs undefined symbols
//! allowed; elsewhere napi resolves Node's symbols at load time).

fn main() {
    napi_build::setup();
}
