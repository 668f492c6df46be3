fn main() {
    // Only the napi bindings need Node's link settings; the pure core builds without them.
    if std::env::var_os("CARGO_FEATURE_NAPI_BINDINGS").is_some() {
        napi_build::setup();
    }
}
