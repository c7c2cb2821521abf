//! What the control tool's benchmarks share: the work `systemctl` is given to compare with.

/// The properties `ImageServing status` reads, for `systemctl show` to read too.
pub const PROPERTIES: &str = "LoadState,ActiveState,SubState,ActiveEnterTimestamp,InvocationID,\
                              MainPID,MemoryCurrent,CPUUsageNSec,TasksCurrent,NRestarts,Result,StatusText";

/// The units `ImageServing status` reads.
pub const UNITS: [&str; 5] = [
    "imageserving.target",
    "imageserving.slice",
    "imageserving-ps.service",
    "imageserving-es.service",
    "imageserving-svg.service",
];
