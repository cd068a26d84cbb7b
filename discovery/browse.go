package discovery

import (
	"context"
	"io"
	"log"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/mdns"
	"github.com/pioreactor/pio/fsm"
)

// Node is a pio node found on the network: Pioreactor's
// {"pioreactor_unit"} and what its TXT records and addresses say.
type Node struct {
	Unit        string `json:"pioreactor_unit"`
	IPv4Address string `json:"ipv4_address"`
	// Address is HOST:PORT of its HTTP API (PUT /api/workers's address).
	Address    string `json:"address"`
	Version    string `json:"version"`
	Model      string `json:"model"`
	Worker     bool   `json:"worker"`
	Standalone bool   `json:"standalone"`
	Fresh      bool   `json:"fresh"`
}

// Browser browses the network for nodes. Browses asked while one runs share
// its answer, so a burst of requests opens one set of sockets.
type Browser struct {
	cfg Config

	mu     sync.Mutex
	cur    *browse // the browse running, nil if none
	closed bool
}

type browse struct {
	done  chan struct{}
	nodes []Node
	err   error
}

// NewBrowser returns a Browser of cfg (see Config.Validate).
func NewBrowser(cfg Config) *Browser { return &Browser{cfg: cfg} }

// Browse asks the network for Service and returns the pio nodes that
// answered within the browse timeout (at most MaxResults), sorted by name.
// ctx ends the wait, not a browse that others share.
func (b *Browser) Browse(ctx context.Context) ([]Node, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	c := b.cur
	if c == nil {
		c = &browse{done: make(chan struct{})}
		b.cur = c
		go func() {
			c.nodes, c.err = b.browse()
			b.mu.Lock()
			b.cur = nil
			b.mu.Unlock()
			close(c.done)
		}()
	}
	b.mu.Unlock()
	select {
	case <-c.done:
		return c.nodes, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close waits for the browse running, if any; later browses fail.
func (b *Browser) Close() {
	b.mu.Lock()
	b.closed = true
	c := b.cur
	b.mu.Unlock()
	if c != nil {
		<-c.done
	}
}

func (b *Browser) browse() ([]Node, error) {
	// The library sends to the channel without blocking and may update an
	// entry after sending it: read them only once the query is over.
	entries := make(chan *mdns.ServiceEntry, b.cfg.MaxResults)
	params := &mdns.QueryParam{Service: Service, Domain: "local", Timeout: b.cfg.BrowseTimeout, Entries: entries,
		DisableIPv6: true, Logger: log.New(io.Discard, "", 0)}
	if b.cfg.Interface != "" {
		ifi, err := net.InterfaceByName(b.cfg.Interface)
		if err != nil {
			return nil, err
		}
		params.Interface = ifi
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.BrowseTimeout+time.Second)
	defer cancel()
	err := mdns.QueryContext(ctx, params)
	close(entries)
	seen := map[string]bool{}
	nodes := []Node{}
	for e := range entries {
		n, ok := nodeOf(e)
		if !ok || seen[n.Unit] {
			continue
		}
		seen[n.Unit] = true
		nodes = append(nodes, n)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Unit < nodes[j].Unit })
	return nodes, err
}

// nodeOf reads a pio node from an answer; anything else (Pioreactor's own
// workers, a bad name or address) is not one.
func nodeOf(e *mdns.ServiceEntry) (Node, bool) {
	txt := map[string]string{}
	for i, f := range e.InfoFields {
		if i == 32 {
			break
		}
		if k, v, ok := strings.Cut(f, "="); ok {
			txt[k] = v
		}
	}
	ip := e.AddrV4.To4()
	if txt["app"] != "pio" || fsm.ValidUnitName(txt["unit"]) != "" || ip == nil || e.Port < 1 || e.Port > 65535 {
		return Node{}, false
	}
	return Node{Unit: txt["unit"], IPv4Address: ip.String(), Address: net.JoinHostPort(ip.String(), strconv.Itoa(e.Port)),
		Version: cut(txt["version"], 100), Model: cut(txt["model"], 100),
		Worker: txt["worker"] == "1", Standalone: txt["standalone"] == "1", Fresh: txt["fresh"] == "1"}, true
}
