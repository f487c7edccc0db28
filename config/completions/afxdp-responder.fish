# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_afxdp_responder_global_optspecs
    string join \n i/iface= queues= cpus= engine= mode= xdp-mode= address= ttl= hop-limit= output= stats-interval= wait= spin-window-us= busy-poll busy-poll-us= no-need-wakeup frame-size= fill-size= comp-size= rx-size= tx-size= batch= check-frames trace= force metrics-addr= allow-from= deny-from= rate-limit-per-source= config= v/verbose q/quiet h/help V/version
end

function __fish_afxdp_responder_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_afxdp_responder_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_afxdp_responder_using_subcommand
    set -l cmd (__fish_afxdp_responder_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -s i -l iface -d 'Interface to answer on, e.g. eth0' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -l queues -d 'Queues to serve, one pinned worker each: `all` (every RX/combined channel of the interface), or a list or ranges, e.g. 0-3 or 0,2. Serve every queue that receives pings (or steer them to the served ones): a ping that arrives on an unserved queue is answered by the kernel instead, and the responder says so at start' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -l cpus -d 'CPU for each queue\'s worker, in the same order as --queues (default: the i-th CPU this process may use for the i-th queue)' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -l engine -d 'Engine: afxdp (AF_XDP sockets, user-space workers), xdp-tx (the XDP program answers in the kernel with XDP_TX; no workers) or drop (the XDP program drops the requests and counts them). All three see the same requests and report the same counters' -r -f -a "afxdp\t'AF_XDP: the XDP program redirects requests to user space, where pinned workers answer'
xdp-tx\t'In-kernel responder: the XDP program answers each request itself with `XDP_TX`'
drop\t'The XDP program drops each request (and counts it); nothing answers'"
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -l mode -l xsk-mode -d 'AF_XDP mode: auto (zero-copy if the driver supports it, else copy), zero-copy, or copy' -r -f -a "auto\t'Zero-copy when the driver supports it, copy otherwise (the mode obtained is printed)'
zero-copy\t'Zero-copy or fail'
copy\t'Copy mode (works on every driver)'"
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -l xdp-mode -d 'How to attach the XDP program: auto (native if the driver supports it, else skb), native (driver mode), or skb (generic mode, slower, works everywhere)' -r -f -a "auto\t'Native if the driver accepts it, otherwise generic (SKB); the loader reports which'
native\t'Native (driver) XDP: runs in the driver before an skb exists. Needed for zero-copy'
skb\t'Generic XDP: runs in the kernel\'s receive path after the skb is built. Works on every interface, slower, copy mode only'"
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -l address -d 'Only answer for these addresses (repeatable). Default: every unicast address of the interface' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -l ttl -d 'IPv4 TTL of replies (default: net.ipv4.ip_default_ttl, like the kernel)' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -l hop-limit -d 'IPv6 hop limit of replies (default: the interface\'s hop_limit, like the kernel)' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -l output -d 'What to print: human (lines for people) or json (one JSON object per line: ready, stats, addresses, notice and summary events; see docs/json-output.md)' -r -f -a "human\t'Lines for people'
json\t'One JSON object per line (see docs/json-output.md)'"
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -l stats-interval -d 'Seconds between live statistics lines; 0 disables them' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -l wait -d 'How a worker waits when its RX ring is empty: sleep (always sleep in poll(): the least CPU per reply), adaptive (spin up to --spin-window-us while packets keep arriving within it, otherwise sleep in poll(); idle costs nothing), or spin (never sleep: spin on the rings in user space, one busy core per queue even without traffic). For the kernel\'s busy polling see --busy-poll' -r -f -a "adaptive\t'Spin up to the spin window while packets keep arriving within it, otherwise sleep in poll(); idle costs nothing'
sleep\t'Always sleep in poll(): the least CPU per reply (the default)'
spin\t'Never sleep: spin on the rings in user space (one busy core per queue, even without traffic)'"
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -l spin-window-us -d 'The longest spin of --wait adaptive, in microseconds (about what a sleep and wake-up cost)' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -l busy-poll-us -d 'With --busy-poll: how long a worker keeps polling an empty queue before it sleeps, in microseconds (also the sockets\' SO_BUSY_POLL)' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -l frame-size -d 'Bytes per UMEM frame: 2048 or 4096' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -l fill-size -d 'Fill ring size, which is also the number of UMEM frames per queue (power of two)' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -l comp-size -d 'Completion ring size (power of two)' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -l rx-size -d 'RX ring size (power of two)' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -l tx-size -d 'TX ring size (power of two)' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -l batch -d 'Frames taken from the RX ring per batch' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -l trace -d 'Print the journey of each worker\'s first N frames round the four rings on stderr: fill slot, RX descriptor, the request, every field the rewrite changes (checksums with the RFC 1624 arithmetic), TX descriptor, completion, refill, with the ring indices (0: off; costs nothing when off; docs/learn/08-the-frame-tracer.md)' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -l metrics-addr -d 'Serve Prometheus metrics over HTTP on this address, e.g. 127.0.0.1:9417 (GET /metrics; see docs/metrics.md). Off by default. The endpoint has no authentication: bind it to a loopback or management address' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -l allow-from -d 'Answer only echo requests from these sources (repeatable; IPv4 or IPv6 CIDR, e.g. 198.18.0.0/15 or 2001:db8::/32; a bare address is one host). Requests from other sources go to the kernel, whose firewall (nftables/iptables, which XDP runs before) then decides. With only IPv4 CIDRs, no IPv6 source is answered by the responder: add ::/0 to answer them' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -l deny-from -d 'Never answer echo requests from these sources (repeatable CIDRs, checked before --allow-from): they go to the kernel and its firewall' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -l rate-limit-per-source -d 'Answer at most N echo requests per second from each source address (bursts of up to N); the excess goes to the kernel, which answers or not by its own rules. Written N or N/s' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -l config -d 'Read options from this TOML file: every long option is a key spelled as the flag (`iface = "eth0"`, `queues = "0-3"`, `force = true`, `address = ["198.18.0.1"]`); options given on the command line override the file. Example: config/afxdp-responder.toml' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -l busy-poll -d 'The kernel\'s preferred busy polling: SO_PREFER_BUSY_POLL, SO_BUSY_POLL and SO_BUSY_POLL_BUDGET (the batch size) on every socket, napi_defer_hard_irqs 2 and gro_flush_timeout 200000 ns on the interface (restored at exit); an idle worker runs the queue\'s NAPI for --busy-poll-us, then sleeps in poll(). Linux 5.11+'
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -l no-need-wakeup -d 'Do not bind with XDP_USE_NEED_WAKEUP (the kernel is then kicked after every batch)'
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -l check-frames -d 'Check after every loop turn that every UMEM frame is on a ring or in flight, and stop with an error if not (for tests and debugging; a little slower)'
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -l force -d 'Replace an XDP program that another tool attached to the interface with netlink (`ip link set ... xdp obj ...`): it is detached first (the kernel unloads it unless something else holds it) and is not re-attached at exit. A program held by a bpf_link, such as another running afxdp-responder, is never replaced: stop its owner'
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -s v -l verbose -d 'Say more on stderr: -v the set-up steps, -vv everything. RUST_LOG (e.g. RUST_LOG=debug) overrides -v and -q'
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -s q -l quiet -d 'Say less on stderr: -q hides notices, -qq warnings too (errors are always printed)'
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -s V -l version -d 'Print version'
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -f -a "flood" -d 'Load generator: sends ICMP echo requests from AF_XDP TX rings, verifies every reply (checksums, addresses, identifier, sequence, payload) and reports rates, losses and round-trip percentiles. Bounded by --duration (at most 600 s) and --count'
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -f -a "check" -d 'Pre-flight check: would starting the responder with these options work?'
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -f -a "status" -d 'What runs on an interface now: the attached program and its counters'
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -f -a "completions" -d 'Print a shell completion script on stdout (bash, zsh, fish, elvish, powershell)'
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -f -a "man" -d 'Print the manual page afxdp-responder(1) (roff) on stdout'
complete -c afxdp-responder -n "__fish_afxdp_responder_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand flood" -s i -l iface -d 'Interface to send from' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand flood" -l dst -d 'Address to ping' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand flood" -l src -d 'Source address (default: the interface\'s address of the same family)' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand flood" -l dst-mac -d 'MAC address of the target (default: from the kernel\'s neighbour table)' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand flood" -l size -d 'IP packet size in bytes, headers included (IPv4 44..=1500, IPv6 64..=1500)' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand flood" -l rate -d 'Requests per second over all queues: `max`, or a number such as 100000 or 100k' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand flood" -l duration -d 'Seconds to send (then 0.3 s to collect the last replies); at most 600' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand flood" -l count -d 'Stop after this many requests' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand flood" -s q -l queues -d 'TX queues to send on, one thread each (replies are expected on the same queues)' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand flood" -l cpus -d 'CPU of each sending thread (default: the last allowed CPUs, away from a responder\'s defaults)' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand flood" -l xdp-mode -d 'How to attach the reply capture XDP program: auto, native or skb' -r -f -a "auto\t'Native if the driver accepts it, otherwise generic (SKB); the loader reports which'
native\t'Native (driver) XDP: runs in the driver before an skb exists. Needed for zero-copy'
skb\t'Generic XDP: runs in the kernel\'s receive path after the skb is built. Works on every interface, slower, copy mode only'"
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand flood" -l bad-checksum-every -d 'Every N-th request gets a wrong ICMP checksum on purpose (0: never); they must not be answered and are not counted as lost' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand flood" -l inject -d 'Where requests come from: `xsk` writes them into AF_XDP TX rings; `live` has the kernel generate them (BPF_PROG_RUN with live frames, Linux >= 5.18; on veth the peer needs an XDP program), which costs the generator far less CPU per request' -r -f -a "xsk\t'Written by the generator\'s threads into AF_XDP TX rings (the default)'
live\t'Generated in the kernel: `BPF_PROG_RUN` with live frames on `redirect-ebpf/flood_inject.c`, which rewrites sequence number, send time and ICMP checksum of a template on every run and returns `XDP_TX` (Linux >= 5.18; on veth the peer needs an XDP program)'"
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand flood" -l json -d 'Print the report as one line of JSON'
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand flood" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -s i -l iface -d 'Interface to answer on, e.g. eth0' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -l queues -d 'Queues to serve, one pinned worker each: `all` (every RX/combined channel of the interface), or a list or ranges, e.g. 0-3 or 0,2. Serve every queue that receives pings (or steer them to the served ones): a ping that arrives on an unserved queue is answered by the kernel instead, and the responder says so at start' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -l cpus -d 'CPU for each queue\'s worker, in the same order as --queues (default: the i-th CPU this process may use for the i-th queue)' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -l engine -d 'Engine: afxdp (AF_XDP sockets, user-space workers), xdp-tx (the XDP program answers in the kernel with XDP_TX; no workers) or drop (the XDP program drops the requests and counts them). All three see the same requests and report the same counters' -r -f -a "afxdp\t'AF_XDP: the XDP program redirects requests to user space, where pinned workers answer'
xdp-tx\t'In-kernel responder: the XDP program answers each request itself with `XDP_TX`'
drop\t'The XDP program drops each request (and counts it); nothing answers'"
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -l mode -l xsk-mode -d 'AF_XDP mode: auto (zero-copy if the driver supports it, else copy), zero-copy, or copy' -r -f -a "auto\t'Zero-copy when the driver supports it, copy otherwise (the mode obtained is printed)'
zero-copy\t'Zero-copy or fail'
copy\t'Copy mode (works on every driver)'"
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -l xdp-mode -d 'How to attach the XDP program: auto (native if the driver supports it, else skb), native (driver mode), or skb (generic mode, slower, works everywhere)' -r -f -a "auto\t'Native if the driver accepts it, otherwise generic (SKB); the loader reports which'
native\t'Native (driver) XDP: runs in the driver before an skb exists. Needed for zero-copy'
skb\t'Generic XDP: runs in the kernel\'s receive path after the skb is built. Works on every interface, slower, copy mode only'"
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -l address -d 'Only answer for these addresses (repeatable). Default: every unicast address of the interface' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -l ttl -d 'IPv4 TTL of replies (default: net.ipv4.ip_default_ttl, like the kernel)' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -l hop-limit -d 'IPv6 hop limit of replies (default: the interface\'s hop_limit, like the kernel)' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -l output -d 'What to print: human (lines for people) or json (one JSON object per line: ready, stats, addresses, notice and summary events; see docs/json-output.md)' -r -f -a "human\t'Lines for people'
json\t'One JSON object per line (see docs/json-output.md)'"
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -l stats-interval -d 'Seconds between live statistics lines; 0 disables them' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -l wait -d 'How a worker waits when its RX ring is empty: sleep (always sleep in poll(): the least CPU per reply), adaptive (spin up to --spin-window-us while packets keep arriving within it, otherwise sleep in poll(); idle costs nothing), or spin (never sleep: spin on the rings in user space, one busy core per queue even without traffic). For the kernel\'s busy polling see --busy-poll' -r -f -a "adaptive\t'Spin up to the spin window while packets keep arriving within it, otherwise sleep in poll(); idle costs nothing'
sleep\t'Always sleep in poll(): the least CPU per reply (the default)'
spin\t'Never sleep: spin on the rings in user space (one busy core per queue, even without traffic)'"
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -l spin-window-us -d 'The longest spin of --wait adaptive, in microseconds (about what a sleep and wake-up cost)' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -l busy-poll-us -d 'With --busy-poll: how long a worker keeps polling an empty queue before it sleeps, in microseconds (also the sockets\' SO_BUSY_POLL)' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -l frame-size -d 'Bytes per UMEM frame: 2048 or 4096' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -l fill-size -d 'Fill ring size, which is also the number of UMEM frames per queue (power of two)' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -l comp-size -d 'Completion ring size (power of two)' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -l rx-size -d 'RX ring size (power of two)' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -l tx-size -d 'TX ring size (power of two)' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -l batch -d 'Frames taken from the RX ring per batch' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -l trace -d 'Print the journey of each worker\'s first N frames round the four rings on stderr: fill slot, RX descriptor, the request, every field the rewrite changes (checksums with the RFC 1624 arithmetic), TX descriptor, completion, refill, with the ring indices (0: off; costs nothing when off; docs/learn/08-the-frame-tracer.md)' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -l metrics-addr -d 'Serve Prometheus metrics over HTTP on this address, e.g. 127.0.0.1:9417 (GET /metrics; see docs/metrics.md). Off by default. The endpoint has no authentication: bind it to a loopback or management address' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -l allow-from -d 'Answer only echo requests from these sources (repeatable; IPv4 or IPv6 CIDR, e.g. 198.18.0.0/15 or 2001:db8::/32; a bare address is one host). Requests from other sources go to the kernel, whose firewall (nftables/iptables, which XDP runs before) then decides. With only IPv4 CIDRs, no IPv6 source is answered by the responder: add ::/0 to answer them' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -l deny-from -d 'Never answer echo requests from these sources (repeatable CIDRs, checked before --allow-from): they go to the kernel and its firewall' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -l rate-limit-per-source -d 'Answer at most N echo requests per second from each source address (bursts of up to N); the excess goes to the kernel, which answers or not by its own rules. Written N or N/s' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -l config -d 'Read options from this TOML file: every long option is a key spelled as the flag (`iface = "eth0"`, `queues = "0-3"`, `force = true`, `address = ["198.18.0.1"]`); options given on the command line override the file. Example: config/afxdp-responder.toml' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -l busy-poll -d 'The kernel\'s preferred busy polling: SO_PREFER_BUSY_POLL, SO_BUSY_POLL and SO_BUSY_POLL_BUDGET (the batch size) on every socket, napi_defer_hard_irqs 2 and gro_flush_timeout 200000 ns on the interface (restored at exit); an idle worker runs the queue\'s NAPI for --busy-poll-us, then sleeps in poll(). Linux 5.11+'
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -l no-need-wakeup -d 'Do not bind with XDP_USE_NEED_WAKEUP (the kernel is then kicked after every batch)'
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -l check-frames -d 'Check after every loop turn that every UMEM frame is on a ring or in flight, and stop with an error if not (for tests and debugging; a little slower)'
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -l force -d 'Replace an XDP program that another tool attached to the interface with netlink (`ip link set ... xdp obj ...`): it is detached first (the kernel unloads it unless something else holds it) and is not re-attached at exit. A program held by a bpf_link, such as another running afxdp-responder, is never replaced: stop its owner'
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -s v -l verbose -d 'Say more on stderr: -v the set-up steps, -vv everything. RUST_LOG (e.g. RUST_LOG=debug) overrides -v and -q'
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -s q -l quiet -d 'Say less on stderr: -q hides notices, -qq warnings too (errors are always printed)'
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -l json -d 'Print the report as one JSON object (schema: docs/json-output.md)'
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand status" -s i -l iface -d 'Interface to look at' -r
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand status" -l json -d 'Print the report as one JSON object (schema: docs/json-output.md)'
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand status" -s v -l verbose -d 'Say more on stderr: -v the set-up steps, -vv everything. RUST_LOG (e.g. RUST_LOG=debug) overrides -v and -q'
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand status" -s q -l quiet -d 'Say less on stderr: -q hides notices, -qq warnings too (errors are always printed)'
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand man" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand help; and not __fish_seen_subcommand_from flood check status completions man help" -f -a "flood" -d 'Load generator: sends ICMP echo requests from AF_XDP TX rings, verifies every reply (checksums, addresses, identifier, sequence, payload) and reports rates, losses and round-trip percentiles. Bounded by --duration (at most 600 s) and --count'
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand help; and not __fish_seen_subcommand_from flood check status completions man help" -f -a "check" -d 'Pre-flight check: would starting the responder with these options work?'
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand help; and not __fish_seen_subcommand_from flood check status completions man help" -f -a "status" -d 'What runs on an interface now: the attached program and its counters'
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand help; and not __fish_seen_subcommand_from flood check status completions man help" -f -a "completions" -d 'Print a shell completion script on stdout (bash, zsh, fish, elvish, powershell)'
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand help; and not __fish_seen_subcommand_from flood check status completions man help" -f -a "man" -d 'Print the manual page afxdp-responder(1) (roff) on stdout'
complete -c afxdp-responder -n "__fish_afxdp_responder_using_subcommand help; and not __fish_seen_subcommand_from flood check status completions man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
