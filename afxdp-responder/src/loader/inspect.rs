//! Reading a running responder's program from the outside (`afxdp-responder status`): the
//! program attached to an interface (through [`attached_program`]), and its per-CPU `counters`
//! map, found through the kernel's program info (program id → map ids → the map named
//! `counters`), without the running process's cooperation.

use aya::maps::{Map, MapData, PerCpuArray};
use aya::programs::loaded_programs;

use super::program::{
    COUNTER_BAD_CHECKSUM, COUNTER_FIB_FIRST, COUNTER_HANDLED, COUNTER_MIRROR_FIRST, COUNTER_MIRROR_HANDLED,
    COUNTER_NO_SOCKET, COUNTER_PASSED, MAP_COUNTERS, MAP_POLICY_COUNTERS, POLICY_DENIED, POLICY_IGNORE_ALL,
    POLICY_NOT_ALLOWED, POLICY_RATE_LIMITED,
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
    let mut counters = None;
    let mut policy = None;
    for id in ids {
        let Ok(data) = MapData::from_id(id) else { continue };
        let name = data.info().ok().and_then(|i| i.name_as_str().map(str::to_string));
        match name.as_deref() {
            Some(MAP_COUNTERS) => counters = Some((id, data)),
            // The kernel keeps the first 15 characters of a map's name.
            Some(n) if MAP_POLICY_COUNTERS.starts_with(n) && !n.is_empty() => policy = Some((id, data)),
            _ => {}
        }
    }
    let Some((id, data)) = counters else {
        return Err(format!(
            "program {prog_id} has no `{MAP_COUNTERS}` map: it is not one of afxdp-responder's"
        ));
    };
    let counters = per_cpu_sums(id, data, MAP_COUNTERS)?;
    let read = |index: u32| -> Result<u64, String> { counters(index) };
    // The FIB slots exist since the FIB check, the mirror slots since the host mirror; a
    // program of an older version has fewer slots: those counters read as 0.
    let fib_slot = |i: u32| read(COUNTER_FIB_FIRST + i).unwrap_or(0);
    let fib = FibPasses {
        no_neigh: fib_slot(0),
        not_unicast: fib_slot(1),
        no_route: fib_slot(2),
        frag_needed: fib_slot(3),
        other_egress: fib_slot(4),
        other: fib_slot(5),
    };
    let mirror_slot = |i: u32| read(COUNTER_MIRROR_FIRST + i).unwrap_or(0);
    let mirror = FibPasses {
        no_neigh: mirror_slot(0),
        not_unicast: mirror_slot(1),
        no_route: mirror_slot(2),
        frag_needed: mirror_slot(3),
        other_egress: mirror_slot(4),
        other: mirror_slot(5),
    };
    // The host-policy reasons: `policy_counters`, when the program has it.
    let policy = policy.and_then(|(id, data)| per_cpu_sums(id, data, MAP_POLICY_COUNTERS).ok());
    let reason = |index: u32| policy.as_ref().and_then(|read| read(index).ok()).unwrap_or(0);
    Ok(EngineCounters {
        handled: read(COUNTER_HANDLED)?,
        passed: read(COUNTER_PASSED)? + fib.total() + mirror.total(),
        no_socket: read(COUNTER_NO_SOCKET)?,
        bad_checksum: read(COUNTER_BAD_CHECKSUM)?,
        fib,
        mirror_handled: read(COUNTER_MIRROR_HANDLED).unwrap_or(0),
        mirror,
        ignored: reason(POLICY_IGNORE_ALL),
        denied: reason(POLICY_DENIED),
        not_allowed: reason(POLICY_NOT_ALLOWED),
        rate_limited: reason(POLICY_RATE_LIMITED),
    })
}

/// A reader of the per-CPU `u64` array `data` (map `id`, named `name`): slot → sum over CPUs.
fn per_cpu_sums(id: u32, data: MapData, name: &str) -> Result<impl Fn(u32) -> Result<u64, String>, String> {
    let array: PerCpuArray<MapData, u64> = PerCpuArray::try_from(Map::PerCpuArray(data))
        .map_err(|e| format!("map {id} `{name}` is not a per-CPU array of u64: {e}"))?;
    Ok(move |index: u32| -> Result<u64, String> {
        let values = array
            .get(&index, 0)
            .map_err(|e| format!("reading counter {index} of map {id}: {e}"))?;
        Ok(values.iter().copied().fold(0u64, u64::wrapping_add))
    })
}
