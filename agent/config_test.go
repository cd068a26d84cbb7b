package agent

import (
	"net"
	"strings"
	"testing"
)

func TestAdvertiseHost(t *testing.T) {
	c := DefaultConfig()
	c.HTTPAddr = "127.0.0.7:8080"
	if h, err := c.advertiseHost(); err != nil || h != "127.0.0.7" {
		t.Fatalf("bound host: %q %v", h, err)
	}
	c.HTTPAddr, c.AdvertiseAddr = ":8080", "10.1.2.3"
	if h, err := c.advertiseHost(); err != nil || h != "10.1.2.3" {
		t.Fatalf("advertise: %q %v", h, err)
	}
	// With an unspecified bind and no --advertise-addr, a host with several
	// addresses is an error that names them and says what to set.
	c.AdvertiseAddr = ""
	ipn := func(s string) net.Addr { return &net.IPNet{IP: net.ParseIP(s), Mask: net.CIDRMask(24, 32)} }
	_, err := c.chooseAdvertise([]net.Addr{ipn("127.0.0.1"), ipn("192.168.1.20"), ipn("10.0.0.7")})
	if err == nil || !strings.Contains(err.Error(), "--advertise-addr") || !strings.Contains(err.Error(), "192.168.1.20, 10.0.0.7") {
		t.Fatalf("several addresses: %v", err)
	}
	if h, err := c.chooseAdvertise([]net.Addr{ipn("127.0.0.1"), ipn("192.168.1.20")}); err != nil || h != "192.168.1.20" {
		t.Fatalf("one address: %q %v", h, err)
	}
}
