//! The C reference responder (`afxdp-lab/c-reference/`) answers real pings, IPv4 and ICMPv6,
//! and a flood whose every reply the generator checks byte for byte, so the bench's reference
//! point cannot rot unnoticed. Needs root, cc, libxdp-dev and libbpf-dev (`run.sh` installs them).

use std::time::Duration;

use afxdp_lab::bench::generator::{self, Generator, Load, Rate};
use afxdp_lab::c_reference::{self, CReference};
use afxdp_lab::{Family, LabConfig, NetnsPair, PingSpec, ping, require_root};

#[test]
fn the_c_reference_answers_real_pings_and_a_verified_flood() {
    if let Err(err) = require_root() {
        panic!("{err}");
    }
    let exe = c_reference::build(&c_reference::default_dir()).unwrap_or_else(|e| panic!("{e}"));
    let pair = NetnsPair::create(&LabConfig {
        queues: 1,
        ..LabConfig::default()
    })
    .unwrap();
    let reference = CReference::start(&pair, &exe).unwrap();
    let mut answered = 0;
    for family in [Family::V4, Family::V6] {
        let report = ping(&pair, &PingSpec::new(family, 5).interval(Duration::from_millis(20))).unwrap();
        assert_eq!(report.received, 5, "{family:?}: {}", report.raw);
        answered += report.received;
    }
    let responder = afxdp_lab::responder_exe().expect("the afxdp-responder binary (for flood)");
    let mut flooded = 0;
    for family in [Family::V4, Family::V6] {
        let load = Load {
            family,
            ip_size: 64,
            rate: Rate::Pps(20_000),
            duration: Duration::from_millis(500),
            queues: 1,
            generator: Generator::Xsk,
        };
        let flood = generator::run_flood(&pair, &responder, &load).unwrap();
        assert_eq!(flood.wrong, 0, "{family:?}: {flood:?}");
        assert!(flood.correct > flood.sent / 2, "{family:?}: {flood:?}");
        flooded += flood.correct;
    }
    let totals = reference.stop().unwrap();
    // Every answer came from the reference (the kernel would also answer pings, not a flood of
    // frames for a socket it never sees: counts prove who answered).
    assert!(
        totals.tx >= answered + flooded,
        "{totals:?}, {answered} pings + {flooded} flood replies"
    );
    assert!(totals.rx >= totals.tx, "{totals:?}");
}
