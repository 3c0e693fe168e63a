package member

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Another daemon on the node's network holding the UDP port on one of the
// node's addresses (MetalLB's memberlist binds 7946 that way) makes Run fail
// at once with an error naming the address, rather than run deaf: the
// migration guide tells users to move the port while both run.
func TestRunFailsWhenThePortIsTaken(t *testing.T) {
	taken, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = taken.Close() }()
	addr := fmt.Sprintf(":%d", taken.LocalAddr().(*net.UDPAddr).Port)
	m, err := New(Config{Name: "n1", ListenAddress: addr})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = m.Run(ctx)
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Run = %v, want EADDRINUSE", err)
	}
	if want := "listen on " + addr; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name %q", err, want)
	}
}
