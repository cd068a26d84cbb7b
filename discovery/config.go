package discovery

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Service is the mDNS service every node advertises: Pioreactor's workers'.
const Service = "_pio-worker._tcp"

// ErrListen is returned by Advertise when the mDNS port cannot be opened or
// no interface can join the mDNS group: the node runs on without mDNS.
var ErrListen = errors.New("discovery: cannot listen for mDNS")

// ErrClosed is returned by a browse after Browser.Close.
var ErrClosed = errors.New("discovery: the browser is closed")

// Config configures advertising and browsing.
type Config struct {
	// Advertise makes the node answer mDNS queries for Service.
	Advertise bool
	// Interface is the network interface to advertise and browse on; empty:
	// every interface that is up, multicast and has an IPv4 address.
	Interface string
	// BrowseTimeout is how long a browse listens for answers.
	BrowseTimeout time.Duration
	// MaxResults bounds the nodes one browse returns.
	MaxResults int
	// Logger receives the responder's and the browser's errors.
	Logger *slog.Logger
}

// DefaultConfig is what a node runs with: it advertises; a browse listens
// 2 s (Pioreactor waits 1.5 s for more answers) for at most 64 nodes.
func DefaultConfig() Config {
	return Config{Advertise: true, BrowseTimeout: 2 * time.Second, MaxResults: 64}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.BrowseTimeout <= 0 || c.BrowseTimeout > 30*time.Second {
		return fmt.Errorf("discovery: browse timeout %v must be over 0 and at most 30s", c.BrowseTimeout)
	}
	if c.MaxResults < 1 || c.MaxResults > 1024 {
		return fmt.Errorf("discovery: max results %d must be 1 to 1024", c.MaxResults)
	}
	return nil
}

func (c Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// interfaces are the interfaces to join the mDNS group on: the configured
// one, or every one that is up, multicast, not loopback, with an IPv4 address.
func (c Config) interfaces() ([]net.Interface, error) {
	if c.Interface != "" {
		ifi, err := net.InterfaceByName(c.Interface)
		if err != nil {
			return nil, fmt.Errorf("interface %q: %w", c.Interface, err)
		}
		return []net.Interface{*ifi}, nil
	}
	all, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []net.Interface
	for _, ifi := range all {
		if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagMulticast == 0 || ifi.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				out = append(out, ifi)
				break
			}
		}
	}
	return out, nil
}
