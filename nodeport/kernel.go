package nodeport

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/go-logr/logr"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	mdnetlink "github.com/mdlayher/netlink"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// DefaultSocketBuffer is the netlink send buffer size: a whole batch goes
// out in one sendmsg, which fails with EMSGSIZE beyond the buffer (the
// default, about 208 KiB, holds about 87 Services). 10,000 Services take
// about 20 MiB.
const DefaultSocketBuffer = 128 << 20

// KernelConfig configures NewKernelApplier.
type KernelConfig struct {
	// NetNS is an open network-namespace file descriptor to program; 0
	// means the caller's namespace.
	NetNS int
	// SocketBuffer is the netlink send and receive buffer in bytes (forced
	// past the sysctl limits, which needs CAP_NET_ADMIN); 0 means
	// DefaultSocketBuffer.
	SocketBuffer int
	// NoConntrack skips stale UDP conntrack cleanup.
	NoConntrack bool
	// Scope is the tables to program; unset (no families) means the
	// dataplane's.
	Scope Scope
}

// KernelApplier is an Applier on real netlink sockets.
type KernelApplier struct {
	*Applier
	send *mdnetlink.Conn // batches
	read *nftables.Conn  // queries
	ct   *netlink.Handle // conntrack; nil with NoConntrack
}

// NewKernelApplier opens the netlink sockets. Close releases them.
func NewKernelApplier(cfg KernelConfig, log logr.Logger) (ka *KernelApplier, err error) {
	size := cfg.SocketBuffer
	if size == 0 {
		size = DefaultSocketBuffer
	}
	k := &KernelApplier{}
	defer func() {
		if err != nil {
			_ = k.Close()
		}
	}()
	if k.send, err = mdnetlink.Dial(unix.NETLINK_NETFILTER, &mdnetlink.Config{NetNS: cfg.NetNS}); err != nil {
		return nil, fmt.Errorf("nftables netlink socket: %w", err)
	}
	if err = raiseBuffers(k.send, size); err != nil {
		return nil, err
	}
	if k.read, err = nftables.New(nftables.AsLasting(), nftables.WithNetNSFd(cfg.NetNS)); err != nil {
		return nil, fmt.Errorf("nftables netlink socket: %w", err)
	}
	b, err := newKernelBatch(&batchSender{conn: k.send}, k.read)
	if err != nil {
		return nil, err
	}
	var ct Conntrack
	if !cfg.NoConntrack {
		if cfg.NetNS != 0 {
			k.ct, err = netlink.NewHandleAt(netns.NsHandle(cfg.NetNS), unix.NETLINK_NETFILTER)
		} else {
			k.ct, err = netlink.NewHandle(unix.NETLINK_NETFILTER)
		}
		if err != nil {
			return nil, fmt.Errorf("conntrack netlink socket: %w", err)
		}
		ct = KernelConntrack{H: k.ct}
	}
	scope := cfg.Scope
	if len(scope.Families) == 0 {
		scope = dataplaneScope
	}
	k.Applier = NewScopedApplier(b, ct, scope, log)
	return k, nil
}

// Close closes the netlink sockets.
func (k *KernelApplier) Close() error {
	var errs []error
	if k.ct != nil {
		k.ct.Close()
	}
	if k.read != nil {
		errs = append(errs, k.read.CloseLasting())
	}
	if k.send != nil {
		errs = append(errs, k.send.Close())
	}
	return errors.Join(errs...)
}

// ServedAddrs lists the destination addresses of the service-ips maps in
// the kernel's tables of the scope: the LoadBalancer IPs and external IPs
// the dataplane forwards, and in full mode the ClusterIPs. It reads the
// kernel rather than the last applied Ruleset, so that a process that did
// not write the tables (the cleaner) learns what an earlier one served.
func (k *KernelApplier) ServedAddrs() ([]netip.Addr, error) {
	var out []netip.Addr
	for _, fam := range k.scope.Families {
		tables, err := k.read.ListTablesOfFamily(fam.nft())
		if err != nil {
			return nil, fmt.Errorf("list %s tables: %w", fam, err)
		}
		for _, t := range tables {
			if !k.scope.owns(t.Name) {
				continue
			}
			sets, err := k.read.GetSets(t)
			if err != nil {
				return nil, fmt.Errorf("sets of %s table %s: %w", fam, t.Name, err)
			}
			for _, s := range sets {
				if s.Name != MapServiceIPs {
					continue
				}
				els, err := k.read.GetSetElements(s)
				if err != nil {
					return nil, fmt.Errorf("elements of %s %s %s: %w", fam, t.Name, s.Name, err)
				}
				for _, e := range els {
					if a, ok := keyAddr(fam, e.Key); ok {
						out = append(out, a)
					}
				}
			}
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out), nil
}

// keyAddr returns the address that leads an element key of a table of
// family fam (see keyBytes).
func keyAddr(fam Family, key []byte) (netip.Addr, bool) {
	n := int(fam.addrLen())
	if fam == Inet || len(key) < n {
		return netip.Addr{}, false
	}
	return netip.AddrFromSlice(key[:n])
}

// ChainPackets sums the packets the counters of a chain counted, in the
// caller's network namespace. It opens its own socket, so it may run
// while an Applier commits.
func ChainPackets(fam Family, table, chain string) (uint64, error) {
	c, err := nftables.New()
	if err != nil {
		return 0, fmt.Errorf("nftables netlink socket: %w", err)
	}
	t := nftTable(fam, table)
	rules, err := c.GetRules(t, &nftables.Chain{Name: chain, Table: t})
	if err != nil {
		return 0, fmt.Errorf("rules of chain %s: %w", chain, err)
	}
	var n uint64
	for _, r := range rules {
		for _, e := range r.Exprs {
			if ctr, ok := e.(*expr.Counter); ok {
				n += ctr.Packets
			}
		}
	}
	return n, nil
}

func raiseBuffers(c *mdnetlink.Conn, size int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	var errs []error
	cerr := rc.Control(func(fd uintptr) {
		for _, o := range []struct{ force, plain int }{{unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}, {unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}} {
			if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o.force, size); err != nil {
				// Without CAP_NET_ADMIN: as much as the sysctl allows.
				if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o.plain, size); err != nil {
					errs = append(errs, err)
				}
			}
		}
	})
	if cerr != nil {
		return fmt.Errorf("netlink socket: %w", cerr)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("netlink socket buffers: %w", err)
	}
	// Error replies without the failed request echoed back.
	_ = c.SetOption(mdnetlink.CapAcknowledge, true)
	return nil
}
