package membership

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/pioreactor/pio/api/client"
	"github.com/pioreactor/pio/rpc"
	"github.com/pioreactor/pio/trust"
)

// JoinResult says how a join went.
type JoinResult struct {
	// Leader names the cluster's leader; Voter says whether this node votes.
	Leader string
	Voter  bool
	// Discarded is where this node's previous standalone state was kept, if it held any.
	Discarded string
}

// target is what a joining node learns of the node it was given: its public
// /unit_api/health, which says where its cluster port is.
type target struct {
	client.Health
	base string
}

// probe reads the public health of the node at addr (HOST[:PORT] of its HTTP API).
func (m *Manager) probe(ctx context.Context, addr string) (target, error) {
	c, err := client.New(addr, 5*time.Second)
	if err != nil {
		return target{}, fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	h, err := c.Health(ctx)
	if err != nil {
		return target{}, fmt.Errorf("%w: %s: %v", ErrUnreachable, c.Base, err)
	}
	if h.RaftAddr == "" {
		return target{}, fmt.Errorf("%w: %s does not say where its cluster port is (an older pio?)", ErrUnreachable, c.Base)
	}
	return target{Health: h, base: c.Base}, nil
}

// Join makes this node join the cluster that the node at addr (its HTTP
// address, HOST[:PORT]) belongs to, with the cluster's join token (or an
// invitation's). A standalone node holding more than its own registration is
// refused with ErrNotEmpty unless force is set; its discarded state is then
// kept aside in the data dir.
func (m *Manager) Join(ctx context.Context, addr, token string, force bool) (JoinResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, m.cfg.JoinTimeout)
	defer cancel()

	t, err := m.probe(ctx, addr)
	if err != nil {
		return JoinResult{}, err
	}
	self := m.cfg.Self
	if t.NodeID == self.NodeID {
		return JoinResult{}, fmt.Errorf("%w: %s is this node (%s)", ErrJoinSelf, t.base, self.Name)
	}
	servers, err := m.node.Servers()
	if err != nil {
		return JoinResult{}, err
	}
	others, voter, together := 0, false, false
	for _, s := range servers {
		together = together || s.ID == t.NodeID
		if s.ID == self.NodeID {
			voter = s.Voter
		} else {
			others++
		}
	}
	if together {
		return JoinResult{Leader: m.leaderName(), Voter: voter}, nil // already there
	}
	if others > 0 {
		return JoinResult{}, fmt.Errorf("%w with %d other node(s), not the one of %s (%s)", ErrAlreadyMember, others, t.Name, t.base)
	}
	empty := !m.node.HadState() || m.fsm.HoldsOnly(self.NodeID)
	if !empty && !force {
		units, exps := m.fsm.Counts()
		return JoinResult{}, fmt.Errorf("%w: it holds %d unit(s), %d experiment(s) and %d assignment record(s)",
			ErrNotEmpty, units, exps, len(m.fsm.History()))
	}
	// Everything that can be refused is asked before anything is discarded.
	b, err := m.credentials(ctx, t, token)
	if err != nil {
		return JoinResult{}, err
	}
	backup, err := m.resetInto(b, !empty)
	if err != nil {
		return JoinResult{}, err
	}
	if backup != "" {
		m.log.Warn("joining with --force: this node's standalone state was moved aside", "backup", backup)
	}
	resp, err := m.addSelf(ctx, t.RaftAddr)
	if err != nil {
		m.log.Error("join failed; going back to standalone", "error", err)
		if rerr := m.backToStandalone(context.Background()); rerr != nil {
			m.log.Error("cannot go back to standalone", "error", rerr)
		}
		return JoinResult{}, err
	}
	if err := m.waitRegistered(ctx); err != nil {
		return JoinResult{}, fmt.Errorf("added to the cluster but not caught up: %w", err)
	}
	m.rejoin(rejoinContacts)
	m.log.Info("joined cluster", "leader", resp.Leader.Name, "voter", resp.Voter)
	return JoinResult{Leader: resp.Leader.Name, Voter: resp.Voter, Discarded: backup}, nil
}

// credentials gets this node's share of the secrets of t's cluster with the
// join token, checking t's CA against the token first. It returns nil for a
// cluster without secrets (an open cluster, which only a node without
// secrets may join).
func (m *Manager) credentials(ctx context.Context, t target, token string) (*trust.Bundle, error) {
	if !t.Secure {
		if m.trust.Current() != nil {
			return nil, fmt.Errorf("%w: %s (%s) runs without secrets", ErrOpenCluster, t.Name, t.base)
		}
		return nil, nil
	}
	if strings.TrimSpace(token) == "" {
		return nil, fmt.Errorf("%w: %s (%s) belongs to a cluster with secrets", ErrTokenRequired, t.Name, t.base)
	}
	tok, err := trust.ParseToken(token)
	if err != nil {
		return nil, err
	}
	key, err := trust.NewNodeKey()
	if err != nil {
		return nil, err
	}
	self := m.cfg.Self
	var g trust.Grant
	_, err = m.rpc.Credentials(ctx, t.RaftAddr, tok.CAHash, rpc.CredentialsRequest{
		Secret: tok.Secret, NodeID: self.NodeID, Name: self.Name, PublicKey: key.Public().(ed25519.PublicKey)}, &g)
	if err != nil {
		var re *rpc.Error
		switch {
		case errors.As(err, &re) && re.Status == http.StatusForbidden:
			return nil, fmt.Errorf("%w: %s refused it", ErrWrongSecret, t.Name)
		case errors.As(err, &re) && re.Status == http.StatusConflict:
			return nil, fmt.Errorf("%w: %s", ErrNameTaken, re.Cause)
		case errors.Is(err, trust.ErrOtherCluster):
			// Keep the check's own words, not the HTTP and TLS layers around them.
			for u := errors.Unwrap(err); u != nil && u != trust.ErrOtherCluster; u = errors.Unwrap(err) {
				err = u
			}
			return nil, fmt.Errorf("%s (%s): %w", t.Name, t.base, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	b, err := g.Open(self.NodeID, key)
	if err != nil {
		return nil, fmt.Errorf("the secrets %s sent are not usable: %w", t.Name, err)
	}
	return b, nil
}

// JoinAtStart handles `pio serve --join ADDR`: a node without state keeps
// asking to be added until it is (or ctx ends, or it is refused); a standalone
// node tries one ordinary join; a node already in a cluster ignores the flag.
func (m *Manager) JoinAtStart(ctx context.Context, addr, token string) {
	if m.node.HadState() {
		servers, err := m.node.Servers()
		if err != nil || len(servers) > 1 {
			return
		}
		if _, err := m.Join(ctx, addr, token, false); err != nil {
			m.log.Error("--join: not joining; this node stays standalone", "address", addr, "error", err,
				"remediation", "run `pio join "+addr+" --token TOKEN --force` to discard this node's data and join")
		}
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	backoff := 250 * time.Millisecond
	for {
		err := m.joinFresh(ctx, addr, token)
		if err == nil {
			return
		}
		if refused(err) {
			m.log.Error("--join: refused; fix the cause and restart", "address", addr, "error", err)
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

// joinFresh makes a node without state a member of the cluster of addr.
func (m *Manager) joinFresh(ctx context.Context, addr, token string) error {
	cctx, cancel := context.WithTimeout(ctx, m.cfg.JoinTimeout)
	defer cancel()
	t, err := m.probe(cctx, addr)
	if err != nil {
		return err
	}
	b, err := m.credentials(cctx, t, token)
	if err != nil {
		return err
	}
	if b != nil {
		if err := m.useSecrets(b); err != nil {
			return err
		}
	}
	resp, err := m.addSelf(cctx, t.RaftAddr)
	if err != nil {
		return err
	}
	m.log.Info("joined cluster", "leader", resp.Leader.Name, "voter", resp.Voter)
	if m.waitRegistered(cctx) == nil {
		m.rejoin(rejoinContacts)
	}
	return nil
}

// refused reports whether a join error is a refusal (fix and retry by hand)
// rather than a cluster not reachable yet.
func refused(err error) bool {
	for _, e := range []error{ErrTokenRequired, ErrBadToken, ErrWrongSecret, ErrOtherCluster, ErrOpenCluster, ErrNameTaken, ErrJoinSelf} {
		if errors.Is(err, e) {
			return true
		}
	}
	var re *rpc.Error
	return errors.As(err, &re) && re.Status/100 == 4
}

// addSelf asks the leader, through the member at addr (its cluster address),
// to add this node; it retries while the cluster has no leader or the leader changes.
func (m *Manager) addSelf(ctx context.Context, addr string) (rpc.MemberResponse, error) {
	for {
		resp, err := m.rpc.AddMember(ctx, addr, m.memberRequest())
		if err == nil {
			return resp, nil
		}
		var re *rpc.Error
		retry := errors.As(err, &re) && (re.Status == http.StatusServiceUnavailable || re.Status == 0)
		if !retry {
			return rpc.MemberResponse{}, err
		}
		select {
		case <-ctx.Done():
			return rpc.MemberResponse{}, fmt.Errorf("%w: %v", ErrNoLeader, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitRegistered waits until this node's own FSM holds its registration: it has caught up.
func (m *Manager) waitRegistered(ctx context.Context) error {
	return m.fsm.WaitUntil(ctx, func() bool {
		_, ok := m.fsm.UnitByID(m.cfg.Self.NodeID)
		return ok
	})
}

// backToStandalone makes this node a new cluster of one, with new secrets,
// holding only its registration: a fresh node again.
func (m *Manager) backToStandalone(ctx context.Context) error {
	return m.restartStandalone(ctx, false)
}

// restartStandalone throws this node's cluster away (kept aside when keep)
// and starts a new cluster of one with new secrets. It returns after the new
// cluster registered this node.
func (m *Manager) restartStandalone(ctx context.Context, keep bool) error {
	next, err := m.freshSecrets()
	if err != nil {
		return err
	}
	if _, err := m.resetInto(next, keep); err != nil {
		return err
	}
	if err := m.node.Bootstrap(); err != nil {
		return err
	}
	return m.registerStandalone(ctx)
}

func (m *Manager) leaderName() string {
	if u, ok := m.leaderUnit(); ok {
		return u.Name
	}
	return ""
}
