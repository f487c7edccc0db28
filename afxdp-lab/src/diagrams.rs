//! `afxdp-lab diagrams`: the SVG diagrams of docs/ (docs/diagrams/*.svg), generated from their
//! text sources (docs/diagrams/*.dia) so that a change is a diff of a few readable lines.
//!
//! The source language, one statement per line (`#` starts a comment; quoted texts use `|` for a
//! line break; coordinates in pixels, origin top left):
//!
//! | statement | draws |
//! |---|---|
//! | `size W H` | the canvas (first statement) |
//! | `title "text"` | a heading at the top |
//! | `region X Y W H "label"` | a dashed area with its label at the top left (user space, kernel) |
//! | `box ID X Y W H STYLE "text"` | a rounded box; STYLE is `user`, `kernel`, `ring`, `frame`, `hot`, `note` or `plain` |
//! | `arrow FROM TO "label"` | a straight arrow between two boxes' edges, its label beside the middle (above a horizontal arrow, right of a vertical one) |
//! | `path X1,Y1 X2,Y2 ... "label"` | an arrow along a polyline, its label beside the middle segment |
//! | `line X1,Y1 X2,Y2 ...` | a thin line without a head |
//! | `text X Y ALIGN "text"` | text, ALIGN `start`, `middle` or `end` |
//!
//! The output depends on the source only (integer coordinates, no time, no randomness), so the
//! test `diagrams_are_up_to_date` regenerates every SVG and compares it byte for byte with the
//! committed one.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The directory of the sources and the SVGs: docs/diagrams of the workspace.
pub fn diagrams_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/diagrams")
}

/// Options of `afxdp-lab diagrams`.
#[derive(Debug, Clone, clap::Args)]
pub struct DiagramArgs {
    /// Only check that every committed SVG equals what its source generates (exit status 1 if
    /// not); write nothing.
    #[arg(long)]
    pub check: bool,
}

/// Every `*.dia` source of `dir` with the SVG it generates, in name order.
pub fn render_all(dir: &Path) -> Result<Vec<(PathBuf, String)>, String> {
    let mut sources: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "dia"))
        .collect();
    sources.sort();
    sources
        .into_iter()
        .map(|source| {
            let text = std::fs::read_to_string(&source).map_err(|e| format!("reading {}: {e}", source.display()))?;
            let svg = render(&text).map_err(|e| format!("{}: {e}", source.display()))?;
            Ok((source.with_extension("svg"), svg))
        })
        .collect()
}

/// `afxdp-lab diagrams [--check]`.
pub fn run(args: &DiagramArgs) -> Result<bool, String> {
    let mut stale = Vec::new();
    for (path, svg) in render_all(&diagrams_dir())? {
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current == svg {
            continue;
        }
        if args.check {
            stale.push(path.display().to_string());
        } else {
            std::fs::write(&path, svg).map_err(|e| format!("writing {}: {e}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    if !stale.is_empty() {
        eprintln!(
            "afxdp-lab: out of date: {}; run cargo run -p afxdp-lab -- diagrams",
            stale.join(", ")
        );
    }
    Ok(stale.is_empty())
}

#[derive(Debug, Clone, Copy)]
struct Rect {
    x: i32,
    y: i32,
    w: i32,
    h: i32,
}

/// Fill and stroke of each box style.
fn style(name: &str) -> Option<(&'static str, &'static str)> {
    Some(match name {
        "user" => ("#e3f0fb", "#2b6cb0"),
        "kernel" => ("#fdecea", "#b83227"),
        "ring" => ("#fff6d6", "#a67c00"),
        "frame" => ("#eef7ee", "#2f7d32"),
        "hot" => ("#ffd9b3", "#c05600"),
        "note" => ("#f4f4f4", "#777777"),
        "plain" => ("#ffffff", "#333333"),
        _ => return None,
    })
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Splits a statement into words; a quoted text is one word (without its quotes).
fn words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').ok_or("a quote is not closed")?;
            out.push(quoted[..end].to_string());
            rest = quoted[end + 1..].trim_start();
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            out.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
    }
    Ok(out)
}

fn number(word: &str) -> Result<i32, String> {
    word.parse().map_err(|_| format!("{word:?} is not a whole number"))
}

fn point(word: &str) -> Result<(i32, i32), String> {
    let (x, y) = word.split_once(',').ok_or(format!("{word:?} is not a point X,Y"))?;
    Ok((number(x)?, number(y)?))
}

/// Lines of `text` (split at `|`) centred on `(x, y)`, 15 px apart.
fn text_lines(svg: &mut String, x: i32, y: i32, anchor: &str, text: &str, class: &str) {
    let lines: Vec<&str> = text.split('|').collect();
    let first = y - (lines.len() as i32 - 1) * 15 / 2;
    for (i, line) in lines.iter().enumerate() {
        let _ = writeln!(
            svg,
            r#"<text x="{x}" y="{}" text-anchor="{anchor}" class="{class}">{}</text>"#,
            first + i as i32 * 15 + 4,
            escape(line)
        );
    }
}

/// Where the segment from the centre of `r` towards `(tx, ty)` leaves `r`.
fn edge(r: Rect, tx: i32, ty: i32) -> (i32, i32) {
    let (cx, cy) = (r.x + r.w / 2, r.y + r.h / 2);
    let (dx, dy) = (f64::from(tx - cx), f64::from(ty - cy));
    if dx == 0.0 && dy == 0.0 {
        return (cx, cy);
    }
    let sx = if dx != 0.0 {
        f64::from(r.w) / 2.0 / dx.abs()
    } else {
        f64::INFINITY
    };
    let sy = if dy != 0.0 {
        f64::from(r.h) / 2.0 / dy.abs()
    } else {
        f64::INFINITY
    };
    let s = sx.min(sy);
    (cx + (dx * s).round() as i32, cy + (dy * s).round() as i32)
}

/// A label beside the segment `a`–`b`: centred above a horizontal one, to the right of a
/// vertical one.
fn label(svg: &mut String, a: (i32, i32), b: (i32, i32), text: &str) {
    if text.is_empty() {
        return;
    }
    let (mx, my) = ((a.0 + b.0) / 2, (a.1 + b.1) / 2);
    if (b.0 - a.0).abs() > (b.1 - a.1).abs() {
        let lines = text.split('|').count() as i32;
        text_lines(svg, mx, my - 6 - lines * 15 / 2, "middle", text, "s");
    } else {
        text_lines(svg, mx + 6, my, "start", text, "s");
    }
}

fn polyline(svg: &mut String, points: &[(i32, i32)], class: &str, head: bool) {
    let pts: Vec<String> = points.iter().map(|(x, y)| format!("{x},{y}")).collect();
    let marker = if head { r#" marker-end="url(#head)""# } else { "" };
    let _ = writeln!(svg, r#"<polyline points="{}" class="{class}"{marker}/>"#, pts.join(" "));
}

/// Renders one diagram source as an SVG document.
pub fn render(source: &str) -> Result<String, String> {
    let mut svg = String::new();
    let mut boxes: BTreeMap<String, Rect> = BTreeMap::new();
    let mut sized = false;
    for (n, raw) in source.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fail = |e: String| format!("line {}: {e}: {line}", n + 1);
        let w = words(line).map_err(fail)?;
        let arity = |k: usize| {
            if w.len() == k {
                Ok(())
            } else {
                Err(fail(format!("`{}` takes {} words, not {}", w[0], k - 1, w.len() - 1)))
            }
        };
        if !sized && w[0] != "size" {
            return Err(fail("the first statement must be `size W H`".into()));
        }
        match w[0].as_str() {
            "size" => {
                arity(3)?;
                let (width, height) = (number(&w[1]).map_err(fail)?, number(&w[2]).map_err(fail)?);
                let _ = writeln!(
                    svg,
                    r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">
<!-- Generated by `afxdp-lab diagrams` from the .dia file of the same name: edit that, not this. -->
<defs><marker id="head" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#333"/></marker></defs>
<style>.t{{font-size:16px;font-weight:bold}} .l{{fill:#222}} .s{{fill:#444;font-size:11px}} .r{{fill:#666;font-size:12px;font-style:italic}} .a{{fill:none;stroke:#333;stroke-width:1.5}} .thin{{fill:none;stroke:#999;stroke-width:1;stroke-dasharray:3 3}}</style>
<rect width="{width}" height="{height}" fill="#ffffff"/>"##
                );
                sized = true;
            }
            "title" => {
                arity(2)?;
                text_lines(&mut svg, 12, 22, "start", &w[1], "t");
            }
            "region" => {
                arity(6)?;
                let r: Vec<i32> = w[1..5]
                    .iter()
                    .map(|s| number(s))
                    .collect::<Result<_, _>>()
                    .map_err(fail)?;
                let _ = writeln!(
                    svg,
                    r##"<rect x="{}" y="{}" width="{}" height="{}" rx="6" fill="none" stroke="#999" stroke-dasharray="6 4"/>"##,
                    r[0], r[1], r[2], r[3]
                );
                text_lines(&mut svg, r[0] + 8, r[1] + 14, "start", &w[5], "r");
            }
            "box" => {
                arity(8)?;
                let r: Vec<i32> = w[2..6]
                    .iter()
                    .map(|s| number(s))
                    .collect::<Result<_, _>>()
                    .map_err(fail)?;
                let (fill, stroke) = style(&w[6]).ok_or_else(|| fail(format!("no style {:?}", w[6])))?;
                let rect = Rect {
                    x: r[0],
                    y: r[1],
                    w: r[2],
                    h: r[3],
                };
                if boxes.insert(w[1].clone(), rect).is_some() {
                    return Err(fail(format!("box {} is defined twice", w[1])));
                }
                let _ = writeln!(
                    svg,
                    r#"<rect x="{}" y="{}" width="{}" height="{}" rx="5" fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>"#,
                    rect.x, rect.y, rect.w, rect.h
                );
                text_lines(&mut svg, rect.x + rect.w / 2, rect.y + rect.h / 2, "middle", &w[7], "l");
            }
            "arrow" => {
                arity(4)?;
                let find = |id: &str| boxes.get(id).copied().ok_or_else(|| fail(format!("no box {id} (yet)")));
                let (a, b) = (find(&w[1])?, find(&w[2])?);
                let from = edge(a, b.x + b.w / 2, b.y + b.h / 2);
                let to = edge(b, a.x + a.w / 2, a.y + a.h / 2);
                polyline(&mut svg, &[from, to], "a", true);
                label(&mut svg, from, to, &w[3]);
            }
            "path" | "line" => {
                let head = w[0] == "path";
                let (pts, text) = if head {
                    let (label, pts) = w[1..].split_last().ok_or_else(|| fail("no points".into()))?;
                    (pts, Some(label))
                } else {
                    (&w[1..], None)
                };
                let points: Vec<(i32, i32)> = pts.iter().map(|p| point(p)).collect::<Result<_, _>>().map_err(fail)?;
                if points.len() < 2 {
                    return Err(fail("a path needs two points or more".into()));
                }
                polyline(&mut svg, &points, if head { "a" } else { "thin" }, head);
                if let Some(text) = text {
                    // The middle segment (of an odd number of segments; else the one before).
                    let i = (points.len() - 2) / 2;
                    label(&mut svg, points[i], points[i + 1], text);
                }
            }
            "text" => {
                arity(5)?;
                let (x, y) = (number(&w[1]).map_err(fail)?, number(&w[2]).map_err(fail)?);
                if !["start", "middle", "end"].contains(&w[3].as_str()) {
                    return Err(fail(format!("align {:?}: use start, middle or end", w[3])));
                }
                text_lines(&mut svg, x, y, &w[3], &w[4], "l");
            }
            other => return Err(fail(format!("unknown statement `{other}`"))),
        }
    }
    if !sized {
        return Err("empty diagram: start with `size W H`".into());
    }
    svg.push_str("</svg>\n");
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_boxes_arrows_and_text_deterministically() {
        let src =
            "size 200 100\nbox a 10 10 50 30 user \"A|two\"\nbox b 130 10 50 30 kernel \"B & C\"\narrow a b \"x\"\n";
        let svg = render(src).unwrap();
        assert_eq!(svg, render(src).unwrap());
        assert!(
            svg.contains(r#"<polyline points="60,25 130,25" class="a" marker-end="url(#head)"/>"#),
            "{svg}"
        );
        // The label of a horizontal arrow is centred above it.
        assert!(
            svg.contains(r#"<text x="95" y="16" text-anchor="middle" class="s">x</text>"#),
            "{svg}"
        );
        assert!(svg.contains(">B &amp; C</text>"));
        assert!(svg.contains(">two</text>"));
        assert!(svg.ends_with("</svg>\n"));
    }

    #[test]
    fn a_mistake_names_its_line() {
        let err = render("size 10 10\nbox a 1 2 3 user \"x\"\n").unwrap_err();
        assert!(err.starts_with("line 2: `box` takes 7 words"), "{err}");
        assert!(render("arrow a b \"\"").unwrap_err().contains("first statement"));
        assert!(render("size 9 9\narrow a b \"\"").unwrap_err().contains("no box a"));
    }

    /// The committed SVGs are what their sources generate. To fix a failure:
    /// `cargo run -p afxdp-lab -- diagrams`, then commit docs/diagrams/.
    #[test]
    fn diagrams_are_up_to_date() {
        let rendered = render_all(&diagrams_dir()).unwrap();
        assert!(rendered.len() >= 4, "the four diagrams of docs/learn are missing");
        for (path, svg) in rendered {
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == svg,
                "{} is out of date with its .dia source: run `cargo run -p afxdp-lab -- diagrams` and commit it",
                path.display()
            );
        }
    }
}
