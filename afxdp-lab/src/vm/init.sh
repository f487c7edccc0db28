#!/bin/busybox sh
# /init of the afxdp-lab guest: a busybox initramfs, no udev, no systemd. It prints KMX-*
# markers on the serial console, which the lab on the host reads, and powers off at the end.
# Options on the kernel command line:
#   kmx.mode=tests      load every XDP object with ip, run each test binary in /tests
#   kmx.mode=responder  configure eth0, run afxdp-responder --output json once per kmx.modes
#                       entry; the lab writes a line on the console when it is done with one
#   kmx.modes=copy,zero-copy,auto,xdp-tx,kernel   kmx.queues=N (1 or 2)
#                       (xdp-tx: --engine xdp-tx; kernel: no responder, the kernel answers;
#                       zero-copy-pass, copy-pass: that mode, answering 198.18.0.1 and 2001:db8::1
#                       zero-copy-busypoll, copy-busypoll: that mode with --busy-poll
#                       only, so requests to 198.18.0.3 are passed to the kernel)
#   kmx.args=A,B,...    more options for every responder run (afxdp-lab vm --responder-arg)
#   kmx.mode=probe      print the boot line and power off (the lab's KVM probe)
# While a mode runs, the lab may write "stat" (the guest answers with its /proc/stat CPU line)
# and writes "next" when it is done with the mode.
/bin/busybox --install -s /bin
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root RUST_BACKTRACE=1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -t bpf bpf /sys/fs/bpf
mkdir -p /var /root && ln -sf /run /var/run
# Debian's busybox runs its own applets before PATH: name iproute2 and ethtool by path.
IP=/usr/sbin/ip
$IP link set lo up
stty -echo 2>/dev/null

arg() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
mode=$(arg kmx.mode); mode=${mode:-tests}
echo "KMX-BOOT kernel=$(uname -r) uptime=$(cut -d' ' -f1 /proc/uptime)s mode=$mode"
[ "$mode" = probe ] && poweroff -f

for m in $(cat /modules/order 2>/dev/null); do
	if insmod "/modules/$m.ko" 2>/tmp/insmod.err; then echo "KMX-MODULE $m ok"
	else echo "KMX-MODULE $m FAILED: $(cat /tmp/insmod.err)"; fi
done

if [ "$mode" = tests ]; then
	# Does each XDP object pass this kernel's verifier? iproute2 (libbpf) loads it and
	# prints the verifier log when it is refused.
	for o in /objs/*.o; do
		n=$(basename "$o" .o)
		if $IP link set dev lo xdpgeneric obj "$o" sec xdp >/tmp/load.log 2>&1; then
			echo "KMX-LOAD $n ok"
			$IP link set dev lo xdpgeneric off
		else
			echo "KMX-LOAD $n FAILED"; tail -n 25 /tmp/load.log
		fi
	done
	cd /tmp
	for t in $(cat /tests/order); do
		/tests/$t --test-threads=1 2>&1
		rc=$?
		if [ $rc = 0 ]; then echo "KMX-RESULT $t PASS"; else echo "KMX-RESULT $t FAIL rc=$rc"; fi
	done
elif [ "$mode" = responder ]; then
	# The host end is a tap in a namespace of the lab's own: 198.18.0.2, 2001:db8::2.
	dev=eth0
	q=$(arg kmx.queues); q=${q:-1}
	qs=0
	if [ "$q" -gt 1 ]; then /usr/sbin/ethtool -L $dev combined "$q"; qs=0-$((q - 1)); fi
	$IP link set $dev up
	$IP addr add 198.18.0.1/24 dev $dev
	$IP addr add 198.18.0.3/24 dev $dev
	$IP -6 addr add 2001:db8::1/64 dev $dev nodad
	echo "KMX-NET ready driver=$(/usr/sbin/ethtool -i $dev | sed -n 's/^driver: //p') queues=$q"
	for m in $(arg kmx.modes | tr , ' '); do
		echo "KMX-START mode=$m"
		case $m in
		xdp-tx) opts="--engine xdp-tx" ;;
		*-pass) opts="--queues $qs --mode ${m%-pass} --address 198.18.0.1 --address 2001:db8::1" ;;
		*-busypoll) opts="--queues $qs --mode ${m%-busypoll} --busy-poll" ;;
		*) opts="--queues $qs --mode $m" ;;
		esac
		[ "$m" != xdp-tx ] && opts="$opts $(arg kmx.args | tr , ' ')"
		echo 0 >/tmp/resp.pid
		if [ "$m" = kernel ]; then
			echo "KMX-KERNEL ready"
			sub=
		else
			(
				/usr/bin/afxdp-responder --iface $dev $opts \
					--output json --stats-interval 0 2>/tmp/resp.err &
				echo $! >/tmp/resp.pid
				wait $!
				rc=$?
				sed 's/^/KMX-ERR /' /tmp/resp.err
				echo "KMX-EXIT mode=$m rc=$rc"
			) &
			sub=$!
		fi
		# The lab writes "stat" for a CPU reading and "next" when it is done with this mode
		# (bounded: 10 minutes without a line ends the mode).
		while read -t 600 line; do
			case $line in
			stat) echo "KMX-STAT $(head -n 1 /proc/stat)" ;;
			*) break ;;
			esac
		done
		if [ -n "$sub" ]; then
			kill -INT "$(cat /tmp/resp.pid)" 2>/dev/null
			wait $sub
		else
			echo "KMX-EXIT mode=$m rc=0"
		fi
	done
fi
echo "KMX-DONE uptime=$(cut -d' ' -f1 /proc/uptime)s"
poweroff -f
