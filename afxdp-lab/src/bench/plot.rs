//! The bench plot (SVG, plotters): two panels of grouped bars, one group per traffic kind and queue
//! count, one bar per engine/mode.
//!
//! - top: replies/s at max rate (median bar, min–max whisker);
//! - bottom: CPU seconds per million replies at the fixed rate, the responder process (dark) with
//!   the host-wide softirq time stacked on top (light).

use std::collections::BTreeSet;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::EngineMode;
use super::generator::Rate;
use super::report::{BenchReport, Ip, RowStatus, Summary};

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 960;

/// The bench's plot colors: the matrix gives one per engine/mode in [`EngineMode::ALL`] order,
/// the ladder one per variant.
pub(super) const PALETTE: [RGBColor; 8] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x17, 0xbe, 0xcf),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xd6, 0x27, 0x28),
];

fn color(engine: EngineMode) -> RGBColor {
    let i = EngineMode::ALL.iter().position(|&e| e == engine).unwrap_or(0);
    PALETTE[i % PALETTE.len()]
}

/// A group of bars: traffic kind and queue count.
type Group = (u32, Ip, u16);

fn group_label((queues, ip, size): Group) -> String {
    let ip = match ip {
        Ip::Ipv4 => "IPv4",
        Ip::Ipv6 => "ICMPv6",
    };
    format!("{ip} {size} B, {queues}q")
}

/// Which figure a panel shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Panel {
    Throughput,
    Cpu,
}

impl Panel {
    fn wants(self, rate: Rate) -> bool {
        match self {
            Panel::Throughput => rate == Rate::Max,
            Panel::Cpu => matches!(rate, Rate::Pps(_)),
        }
    }

    /// The bar for one row, in plot units.
    fn values(self, s: &Summary) -> Option<Bar> {
        match self {
            Panel::Throughput => {
                let r = s.replies_per_s;
                Some(Bar {
                    low: r.median / 1e6,
                    high: 0.0,
                    whisker: Some((r.min / 1e6, r.max / 1e6)),
                })
            }
            Panel::Cpu => {
                let soft = s.softirq_cpu_s_per_mreply?.median;
                let own = s.responder_cpu_s_per_mreply.map_or(0.0, |c| c.median);
                Some(Bar {
                    low: own,
                    high: soft,
                    whisker: None,
                })
            }
        }
    }
}

/// One bar: a dark part from 0, a light part stacked on it, and an optional min–max whisker.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bar {
    low: f64,
    high: f64,
    whisker: Option<(f64, f64)>,
}

/// The bars of one panel: (group, engine, bar).
type Bars = Vec<(Group, EngineMode, Bar)>;

fn bars(report: &BenchReport, panel: Panel) -> Bars {
    report
        .rows
        .iter()
        .filter(|r| !matches!(r.status, RowStatus::Skipped { .. }))
        .filter_map(|r| {
            let w = r.workload?;
            if !panel.wants(w.rate) {
                return None;
            }
            let v = panel.values(r.summary.as_ref()?)?;
            Some(((r.queues, w.ip, w.ip_size), r.engine, v))
        })
        .collect()
}

/// The whole plot as SVG text.
pub fn svg(report: &BenchReport) -> Result<String, String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let title = format!(
            "afxdp-lab bench, {} · kernel {} · {} · generator: {}",
            report.date, report.machine.kernel, report.machine.cpu_model, report.generator
        );
        root.draw(&Text::new(
            title,
            (WIDTH as i32 / 2, 10),
            ("sans-serif", 18)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(|e| e.to_string())?;
        let body = root.margin(36, 0, 0, 0);
        let (top, bottom) = body.split_vertically(HEIGHT as i32 / 2 - 18);
        let fixed = crate::bench::report::si(report.fixed_rate_pps as f64);
        panel(
            &root,
            &top,
            &bars(report, Panel::Throughput),
            "Replies/s at max rate (median, min–max whisker)",
            "M replies/s",
        )?;
        panel(
            &root,
            &bottom,
            &bars(report, Panel::Cpu),
            &format!("CPU s per million replies at {fixed} requests/s: responder process (dark) + softirq (light)"),
            "CPU s / M replies",
        )?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(buf)
}

fn panel(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    bars: &Bars,
    caption: &str,
    y_desc: &str,
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<_>| e.to_string();
    let groups: Vec<Group> = bars.iter().map(|b| b.0).collect::<BTreeSet<_>>().into_iter().collect();
    let engines: Vec<EngineMode> = bars.iter().map(|b| b.1).collect::<BTreeSet<_>>().into_iter().collect();
    if groups.is_empty() {
        area.draw(&Text::new(
            format!("{caption}: no measurements"),
            (40, 40),
            ("sans-serif", 16).into_font().color(&BLACK),
        ))
        .map_err(err)?;
        return Ok(());
    }
    let slots = engines.len() as f64 + 1.0;
    let x_max = groups.len() as f64 * slots;
    let y_top = bars
        .iter()
        .map(|(_, _, b)| (b.low + b.high).max(b.whisker.map_or(0.0, |w| w.1)))
        .fold(0.0, f64::max);
    let y_max = if y_top > 0.0 { y_top * 1.15 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(10)
        .margin_bottom(40)
        .x_label_area_size(10)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .x_label_formatter(&|_| String::new())
        .y_desc(y_desc)
        .y_label_formatter(&|v| format!("{v:.2}"))
        .draw()
        .map_err(err)?;
    for (e, &engine) in engines.iter().enumerate() {
        let c = color(engine);
        let x0 = |g: usize| g as f64 * slots + 0.5 + e as f64;
        let mine: Vec<(usize, Bar)> = bars
            .iter()
            .filter(|b| b.1 == engine)
            .filter_map(|b| groups.iter().position(|&g| g == b.0).map(|g| (g, b.2)))
            .collect();
        chart
            .draw_series(
                mine.iter()
                    .map(|&(g, b)| Rectangle::new([(x0(g) + 0.08, 0.0), (x0(g) + 0.92, b.low)], c.filled())),
            )
            .map_err(err)?
            .label(engine.label())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], c.filled()));
        chart
            .draw_series(mine.iter().filter(|(_, b)| b.high > 0.0).map(|&(g, b)| {
                Rectangle::new(
                    [(x0(g) + 0.08, b.low), (x0(g) + 0.92, b.low + b.high)],
                    c.mix(0.4).filled(),
                )
            }))
            .map_err(err)?;
        for &(g, b) in &mine {
            if let Some((lo, hi)) = b.whisker {
                let mid = x0(g) + 0.5;
                let style = ShapeStyle::from(&BLACK).stroke_width(1);
                chart
                    .draw_series([
                        PathElement::new(vec![(mid, lo), (mid, hi)], style),
                        PathElement::new(vec![(mid - 0.2, lo), (mid + 0.2, lo)], style),
                        PathElement::new(vec![(mid - 0.2, hi), (mid + 0.2, hi)], style),
                    ])
                    .map_err(err)?;
            }
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    // Group names under the x axis, drawn on the root area at the pixel position of each group.
    for (g, &group) in groups.iter().enumerate() {
        let center = g as f64 * slots + 0.5 + engines.len() as f64 / 2.0;
        let (px, py) = chart.backend_coord(&(center, 0.0));
        root.draw(&Text::new(
            group_label(group),
            (px, py + 8),
            ("sans-serif", 13)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Family;
    use crate::bench::Plan;
    use crate::bench::report::{Row, Sample, Workload};
    use responder_json::FloodReport;

    fn report() -> BenchReport {
        let plan = Plan {
            queues: vec![1],
            engines: EngineMode::ALL.to_vec(),
            workloads: vec![],
            duration_s: 1.0,
            repetitions: 1,
            idle_s: 0.0,
        };
        BenchReport::new(&plan, 100_000)
    }

    #[test]
    fn an_empty_report_still_plots() {
        let svg = svg(&report()).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        assert!(svg.contains("no measurements"));
    }

    #[test]
    fn bars_legends_and_group_names_are_drawn() {
        let mut r = report();
        for (engine, rps) in [(EngineMode::AfxdpCopyNative, 7e5), (EngineMode::Kernel, 3e5)] {
            for (family, rate) in [(Family::V4, Rate::Max), (Family::V6, Rate::Pps(100_000))] {
                let mut row = Row::new(1, engine, Workload::new(family, 64, rate));
                row.samples.push(Sample {
                    flood: FloodReport {
                        sent: 1_000_000,
                        replies: rps as u64,
                        correct: rps as u64,
                        duration_s: 1.0,
                        replies_per_s: rps,
                        ..FloodReport::default()
                    },
                    wall_s: 1.0,
                    responder_cpu_s: (engine != EngineMode::Kernel).then_some(0.3),
                    responder_threads: vec![],
                    softirq_cpu_s: 0.2,
                    host_busy_cpu_s: 1.0,
                });
                row.summarize();
                r.rows.push(row);
            }
        }
        r.rows.push(Row::skipped(
            1,
            EngineMode::AfxdpZeroCopy,
            "not supported by veth".into(),
        ));
        let svg = svg(&r).unwrap();
        assert!(svg.contains("AF_XDP copy, native XDP"));
        assert!(svg.contains("kernel stack, no XDP"));
        assert!(!svg.contains("AF_XDP zero-copy"), "skipped engines get no legend entry");
        assert!(svg.contains("IPv4 64 B, 1q"));
        assert!(svg.contains("ICMPv6 64 B, 1q"));
        assert!(svg.matches("<rect").count() > 6);
    }
}
