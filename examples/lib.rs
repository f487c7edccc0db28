//! The Rust blocks of the documentation, compiled: every ```` ```rust ```` block in `README.md`
//! and `docs/**/*.md` is in a file included below as the doc comment of an empty module, so
//! `cargo test --doc` (part of `./run.sh test`) compiles it, and runs it unless it is marked
//! `no_run`. A block that cannot compile must say `ignore` and give its reason next to it.
//! The test below fails when a Markdown file gains a Rust block and is not included here.
//!
//! (Everything else in a file included here must be fenced with a language, ```` ```text ````
//! for output: rustdoc takes an unlabelled block for Rust.)

#[doc = include_str!("../docs/learn/02-xskmap-and-redirect.md")]
pub mod learn_02_xskmap_and_redirect {}

/// The Markdown files included above, relative to the workspace root.
pub const INCLUDED: &[&str] = &["docs/learn/02-xskmap-and-redirect.md"];

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    fn markdown(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
            let path = dir.join(entry.file_name());
            if root.join(&path).is_dir() {
                markdown(root, &path, out);
            } else if path.extension().is_some_and(|x| x == "md") {
                out.push(path);
            }
        }
    }

    /// Opening fences of Rust blocks (```rust, ```rust,no_run, …; not ```rust,ignore).
    fn rust_blocks(text: &str) -> Vec<(usize, String)> {
        let mut open = false;
        let mut found = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let Some(info) = line.trim_start().strip_prefix("```") else {
                continue;
            };
            if !open {
                let info = info.trim();
                if info.split(',').next() == Some("rust") && !info.contains("ignore") {
                    found.push((i + 1, info.to_string()));
                }
            }
            open = !open;
        }
        found
    }

    #[test]
    fn every_file_with_a_rust_block_is_compiled_as_doctests() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files = vec![PathBuf::from("README.md")];
        markdown(&root, Path::new("docs"), &mut files);
        let mut with_rust: Vec<String> = files
            .iter()
            .filter(|f| !rust_blocks(&std::fs::read_to_string(root.join(f)).unwrap()).is_empty())
            .map(|f| f.display().to_string())
            .collect();
        with_rust.sort();
        let mut included: Vec<String> = super::INCLUDED.iter().map(|s| s.to_string()).collect();
        included.sort();
        assert_eq!(
            with_rust, included,
            "include every Markdown file with a ```rust block in examples/lib.rs (and list it in INCLUDED)"
        );
    }

    #[test]
    fn the_fence_reader_sees_rust_blocks_only() {
        let text = "```sh\nls\n```\n```rust,no_run\nfn f() {}\n```\n```rust,ignore\nx\n```\n```text\n```rust\n```\n";
        assert_eq!(rust_blocks(text), vec![(4, "rust,no_run".to_string())]);
    }
}
