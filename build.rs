//! Rebuilds the binary when a console file is added or removed: `include_dir!` tracks the
//! contents of the files it embedded, but not a new file in `console/assets/`.

fn main() {
    println!("cargo:rerun-if-changed=console/index.html");
    println!("cargo:rerun-if-changed=console/assets");
}
