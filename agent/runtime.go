package agent

import (
	"log/slog"
	"net"
	"sync"
	"time"
)

// Runtime runs this node's agent and restarts it in-process when a simulated
// node is rebooted: the agent stops (jobs, HTTP, gossip, Raft), then a new one
// starts from the same data dir. Close stops the runtime and its agent.
type Runtime struct {
	cfg     Config
	log     *slog.Logger
	reboots chan struct{}
	// shutdowns asks the runtime to stop its agent and start none again (a simulated power-off).
	shutdowns chan struct{}
	done      chan struct{}
	stopped   chan struct{}

	mu sync.Mutex
	a  *Agent
}

// StartRuntime starts the agent of cfg under a runtime.
func StartRuntime(cfg Config, log *slog.Logger) (*Runtime, error) {
	r := &Runtime{log: log, reboots: make(chan struct{}, 1), shutdowns: make(chan struct{}, 1), done: make(chan struct{}), stopped: make(chan struct{})}
	cfg.onReboot, cfg.onShutdown = r.requestReboot, r.requestShutdown
	a, err := Start(cfg, log)
	if err != nil {
		return nil, err
	}
	// A restart must come back on the addresses peers know, also when port 0 was asked for.
	cfg.HTTPAddr = pinPort(cfg.HTTPAddr, a.httpAddr)
	cfg.RaftAddr = pinPort(cfg.RaftAddr, a.node.Addr())
	cfg.GossipAddr = pinPort(cfg.GossipAddr, a.mem.GossipAddr())
	cfg.MQTTAddr = pinPort(cfg.MQTTAddr, a.MQTTAddr())
	cfg.MQTTWSAddr = pinPort(cfg.MQTTWSAddr, a.MQTTWSAddr())
	cfg.Join = ""
	r.cfg, r.a = cfg, a
	go r.loop()
	return r, nil
}

// pinPort replaces a bind address's port 0 by the port actually used.
func pinPort(bind, got string) string {
	host, port, err := net.SplitHostPort(bind)
	if err != nil || port != "0" {
		return bind
	}
	_, gotPort, _ := net.SplitHostPort(got)
	return net.JoinHostPort(host, gotPort)
}

func (r *Runtime) requestShutdown() {
	select {
	case r.shutdowns <- struct{}{}:
	default:
	}
}

func (r *Runtime) requestReboot() {
	select {
	case r.reboots <- struct{}{}:
	default:
	}
}

// Current returns the running agent.
func (r *Runtime) Current() *Agent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.a
}

func (r *Runtime) loop() {
	defer close(r.stopped)
	for {
		select {
		case <-r.done:
			return
		case <-r.shutdowns:
			time.Sleep(300 * time.Millisecond) // let the 202 answer go out
			r.log.Info("shutting down: stopping the runtime until it is started again (simulated power-off)")
			_ = r.Current().Close()
			return
		case <-r.reboots:
		}
		time.Sleep(300 * time.Millisecond) // let the 202 answer go out
		r.log.Info("rebooting: stopping the runtime")
		r.mu.Lock()
		_ = r.a.Close()
		for {
			a, err := Start(r.cfg, r.log)
			if err == nil {
				r.a = a
				break
			}
			r.log.Error("reboot: cannot start again, retrying", "error", err)
			select {
			case <-r.done:
				r.mu.Unlock()
				return
			case <-time.After(time.Second):
			}
		}
		r.mu.Unlock()
		r.log.Info("rebooted")
	}
}

// Close stops the runtime and its agent.
func (r *Runtime) Close() error {
	select {
	case <-r.done:
	default:
		close(r.done)
	}
	<-r.stopped
	return r.Current().Close()
}
