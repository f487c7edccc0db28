//! Reading a running responder's program from the outside (`afxdp-responder status`): the
//! program attached to an interface (through [`attached_program`]), and its per-CPU `counters`
//! map, found through the kernel's program info (program id → map ids → the map named
//! `counters`), without the running process's cooperation.

use aya::maps::{Map, MapData, PerCpuArray};
use aya::programs::loaded_programs;

use super::program::{
    COUNTER_BAD_CHECKSUM, COUNTER_FIB_FIRST, COUNTER_FIB_UNCHECKED, COUNTER_HANDLED, COUNTER_NO_SOCKET, COUNTER_PASSED,
    MAP_COUNTERS,
};
use super::{EngineCounters, ExistingXdpProgram, FibPasses};

/// What XDP program is attached to `ifname`, and who holds it; `None` if none.
pub fn attached_program(ifname: &str) -> Option<ExistingXdpProgram> {
    super::attach::existing_xdp_program(ifname)
}

/// The counters of loaded program `prog_id`, summed over the CPUs, from its map named
/// `counters` (the layout every engine's program shares). `Err` says why they cannot be read.
pub fn program_counters(prog_id: u32) -> Result<EngineCounters, String> {
    let info = loaded_programs()
        .flatten()
        .find(|p| p.id() == prog_id)
        .ok_or_else(|| format!("program {prog_id} is not loaded (or listing programs needs CAP_SYS_ADMIN)"))?;
    let ids = info
        .map_ids()
        .map_err(|e| format!("reading the map ids of program {prog_id}: {e}"))?
        .unwrap_or_default();
    for id in ids {
        let Ok(data) = MapData::from_id(id) else { continue };
        let named = data.info().ok().is_some_and(|i| i.name_as_str() == Some(MAP_COUNTERS));
        if !named {
            continue;
        }
        let counters: PerCpuArray<MapData, u64> = PerCpuArray::try_from(Map::PerCpuArray(data))
            .map_err(|e| format!("map {id} `{MAP_COUNTERS}` is not a per-CPU array of u64: {e}"))?;
        let read = |index: u32| -> Result<u64, String> {
            let values = counters
                .get(&index, 0)
                .map_err(|e| format!("reading counter {index} of map {id}: {e}"))?;
            Ok(values.iter().copied().fold(0u64, u64::wrapping_add))
        };
        // The FIB slots exist since the FIB check; a program of an older version has 4 slots:
        // its FIB counters read as 0.
        let fib_slot = |i: u32| read(COUNTER_FIB_FIRST + i).unwrap_or(0);
        let fib = FibPasses {
            no_neigh: fib_slot(0),
            not_unicast: fib_slot(1),
            no_route: fib_slot(2),
            frag_needed: fib_slot(3),
            other_egress: fib_slot(4),
            other: fib_slot(5),
        };
        return Ok(EngineCounters {
            handled: read(COUNTER_HANDLED)?,
            passed: read(COUNTER_PASSED)? + fib.total(),
            no_socket: read(COUNTER_NO_SOCKET)?,
            bad_checksum: read(COUNTER_BAD_CHECKSUM)?,
            fib,
            fib_unchecked: read(COUNTER_FIB_UNCHECKED).unwrap_or(0),
            // The host-policy reasons live in `policy_counters` (not read here).
            ..EngineCounters::default()
        });
    }
    Err(format!(
        "program {prog_id} has no `{MAP_COUNTERS}` map: it is not one of afxdp-responder's"
    ))
}
