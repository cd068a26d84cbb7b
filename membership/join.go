package membership

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/pioreactor/pio/api/client"
	"github.com/pioreactor/pio/fsm"
)

// Join makes this node join the cluster that the node at addr (its HTTP
// address, HOST[:PORT]) belongs to. A standalone node holding more than its
// own registration is refused with ErrNotEmpty unless force is set; its
// discarded state is then kept aside in the data dir.
func (m *Manager) Join(ctx context.Context, addr string, force bool) (client.JoinResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, m.cfg.JoinTimeout)
	defer cancel()

	c, err := m.peer(addr)
	if err != nil {
		return client.JoinResponse{}, fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	h, err := c.Health(ctx)
	if err != nil {
		return client.JoinResponse{}, fmt.Errorf("%w: %s: %v", ErrUnreachable, c.Base, err)
	}
	self := m.cfg.Self
	if h.NodeID == self.NodeID {
		return client.JoinResponse{}, fmt.Errorf("%w: %s is this node (%s)", ErrJoinSelf, c.Base, self.Name)
	}
	servers, err := m.node.Servers()
	if err != nil {
		return client.JoinResponse{}, err
	}
	others, voter, together := 0, false, false
	for _, s := range servers {
		together = together || s.ID == h.NodeID
		if s.ID == self.NodeID {
			voter = s.Voter
		} else {
			others++
		}
	}
	if together {
		return client.JoinResponse{Joined: true, Leader: m.leaderName(), Voter: voter}, nil // already there
	}
	if others > 0 {
		return client.JoinResponse{}, fmt.Errorf("%w with %d other node(s), not the one of %s (%s)", ErrAlreadyMember, others, h.Name, c.Base)
	}
	// Preflight before anything is discarded: the cluster has a leader and our
	// name is free there.
	ci, err := c.Cluster(ctx, false)
	if err != nil {
		return client.JoinResponse{}, fmt.Errorf("%w: the cluster of %s does not answer: %v", ErrNoLeader, h.Name, err)
	}
	for _, mem := range ci.Members {
		if mem.Name == self.Name && mem.NodeID != self.NodeID {
			return client.JoinResponse{}, fmt.Errorf("%w: %q is node %s (%s) in that cluster", ErrNameTaken, self.Name, mem.NodeID, mem.HTTPAddr)
		}
	}
	empty := !m.node.HadState() || m.fsm.HoldsOnly(self.NodeID)
	if !empty && !force {
		units, exps := m.fsm.Counts()
		return client.JoinResponse{}, fmt.Errorf("%w: it holds %d unit(s), %d experiment(s) and %d assignment record(s)",
			ErrNotEmpty, units, exps, len(m.fsm.History()))
	}
	backup, err := m.node.Reset(!empty)
	if err != nil {
		return client.JoinResponse{}, fmt.Errorf("reset raft state before joining: %w", err)
	}
	if backup != "" {
		m.log.Warn("joining with --force: this node's standalone state was moved aside", "backup", backup)
	}
	resp, err := m.addSelf(ctx, c)
	if err != nil {
		m.log.Error("join failed; going back to standalone", "error", err)
		if rerr := m.backToStandalone(context.Background()); rerr != nil {
			m.log.Error("cannot go back to standalone", "error", rerr)
		}
		return client.JoinResponse{}, err
	}
	if err := m.waitRegistered(ctx); err != nil {
		return client.JoinResponse{}, fmt.Errorf("added to the cluster but not caught up: %w", err)
	}
	m.rejoin()
	m.log.Info("joined cluster", "leader", resp.Leader.Name, "voter", resp.Voter)
	return client.JoinResponse{Joined: true, Leader: resp.Leader.Name, Voter: resp.Voter, Discarded: backup}, nil
}

// JoinAtStart handles `pio serve --join ADDR`: a node without state keeps
// asking to be added until it is (or ctx ends); a standalone node tries one
// ordinary join; a node already in a cluster ignores the flag.
func (m *Manager) JoinAtStart(ctx context.Context, addr string) {
	if m.node.HadState() {
		servers, err := m.node.Servers()
		if err != nil || len(servers) > 1 {
			return
		}
		if _, err := m.Join(ctx, addr, false); err != nil {
			m.log.Error("--join: not joining; this node stays standalone", "address", addr, "error", err,
				"remediation", "run `pio join "+addr+" --force` to discard this node's data and join")
		}
		return
	}
	c, err := m.peer(addr)
	if err != nil {
		m.log.Error("--join: bad address", "address", addr, "error", err)
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	backoff := 250 * time.Millisecond
	for {
		resp, err := m.addSelf(ctx, c)
		if err == nil {
			m.log.Info("joined cluster", "leader", resp.Leader.Name, "voter", resp.Voter)
			if m.waitRegistered(ctx) == nil {
				m.rejoin()
			}
			return
		}
		var ae *client.Error
		if errors.As(err, &ae) && ae.Status/100 == 4 {
			m.log.Error("--join: refused; fix the cause and restart", "address", addr, "error", ae.Explain())
			return
		}
		m.log.Warn("--join: cluster not reachable yet, retrying", "address", addr, "error", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// addSelf asks the leader, through c, to add this node; it retries while the
// cluster has no leader or the leader changes.
func (m *Manager) addSelf(ctx context.Context, c *client.Client) (client.MemberResponse, error) {
	for {
		resp, err := c.AddMember(ctx, m.memberRequest())
		if err == nil {
			return resp, nil
		}
		var ae *client.Error
		retry := errors.As(err, &ae) && (ae.Status == http.StatusServiceUnavailable || ae.Status == 0)
		if !retry {
			return client.MemberResponse{}, err
		}
		select {
		case <-ctx.Done():
			return client.MemberResponse{}, fmt.Errorf("%w: %v", ErrNoLeader, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitRegistered waits until this node's own FSM holds its registration: it has caught up.
func (m *Manager) waitRegistered(ctx context.Context) error {
	for {
		if _, ok := m.fsm.UnitByID(m.cfg.Self.NodeID); ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// backToStandalone resets this node into a new cluster of one holding only its registration.
func (m *Manager) backToStandalone(ctx context.Context) error {
	if _, err := m.node.Reset(false); err != nil {
		return err
	}
	if err := m.node.Bootstrap(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for !m.node.IsLeader() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("standalone node did not elect itself: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	cmd, _ := fsm.NewCommand(fsm.CmdRegisterUnit, uuid.NewString(), time.Now(), m.Registration())
	res, err := m.node.Apply(cmd)
	if err == nil {
		err = res.Err
	}
	return err
}

func (m *Manager) leaderName() string {
	if u, ok := m.leaderUnit(); ok {
		return u.Name
	}
	return ""
}
