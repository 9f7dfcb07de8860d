//! Finds librecsys with pkg-config (std only, no crates): `pkg-config --libs
//! librecsys`, honouring PKG_CONFIG_PATH, so a build tree's
//! meson-uninstalled/ directory works. LIBRECSYS_LIB_DIR overrides it.
use std::env;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=LIBRECSYS_LIB_DIR");
    if let Ok(dir) = env::var("LIBRECSYS_LIB_DIR") {
        println!("cargo:rustc-link-search=native={}", dir);
        println!("cargo:rustc-link-lib=dylib=recsys");
        return;
    }
    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_string());
    let out = Command::new(&pkg_config).args(&["--libs", "librecsys"]).output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout).to_string();
            let mut linked = false;
            for flag in text.split_whitespace() {
                if let Some(dir) = flag.strip_prefix("-L") {
                    println!("cargo:rustc-link-search=native={}", dir);
                    println!("cargo:libdir={}", dir);
                } else if let Some(lib) = flag.strip_prefix("-l") {
                    println!("cargo:rustc-link-lib=dylib={}", lib);
                    linked = linked || lib == "recsys";
                }
            }
            if !linked {
                println!("cargo:rustc-link-lib=dylib=recsys");
            }
        }
        _ => {
            println!("cargo:warning=pkg-config found no librecsys; linking -lrecsys from the default paths");
            println!("cargo:rustc-link-lib=dylib=recsys");
        }
    }
}
