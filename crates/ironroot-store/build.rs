//! Embeds the SQL migrations of both backends into the library.
//!
//! sqlx's `migrate!` macro would do this, but it needs `sqlx-macros`, which compiles the SQLite C
//! library a second time for the proc-macro host. Instead this script lists
//! `migrations/<backend>/NNNN_description.sql` and writes a table of `include_str!`s, so adding a
//! migration (for example the audit log's tables) is only dropping a file into each directory.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    println!("cargo:rerun-if-changed=migrations");
    let mut code = String::new();
    for (backend, constant) in [("sqlite", "SQLITE"), ("postgres", "POSTGRES")] {
        let dir = Path::new(&manifest).join("migrations").join(backend);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
            .map(|entry| entry.expect("readable directory entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
            .collect();
        files.sort();
        writeln!(
            code,
            "/// Embedded {backend} migrations: (version, description, SQL)."
        )
        .unwrap();
        writeln!(
            code,
            "pub(crate) const {constant}: &[(i64, &str, &str)] = &["
        )
        .unwrap();
        let mut last = 0i64;
        for path in files {
            let stem = path.file_stem().unwrap().to_str().expect("UTF-8 file name");
            let (version, description) = stem
                .split_once('_')
                .unwrap_or_else(|| panic!("migration {stem} must be named NNNN_description.sql"));
            let version: i64 = version
                .parse()
                .unwrap_or_else(|_| panic!("migration {stem}: version must be a number"));
            assert!(
                version > last,
                "migration versions must be unique and increasing: {stem}"
            );
            last = version;
            writeln!(
                code,
                "    ({version}, {description:?}, include_str!({:?})),",
                path.display().to_string()
            )
            .unwrap();
        }
        writeln!(code, "];").unwrap();
    }
    std::fs::write(Path::new(&out_dir).join("migrations.rs"), code).expect("write migrations.rs");
}
