package membership

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pioreactor/pio/fsm"
	"github.com/pioreactor/pio/rpc"
	"github.com/pioreactor/pio/trust"
)

// `pio security enable` moves a cluster made before pio had secrets (an open
// cluster) to secrets, mutual TLS and encrypted gossip, in place, while it
// serves. The leader makes the secrets and a share for every member, and hands
// the shares over the old channel once: through the Raft log (fsm.CmdSecurityPhase).
// Then three phases, each applied by every member before the next begins:
//
//  1. every node installs its share and accepts TLS as well as plain TCP;
//  2. every node dials TLS (its open connections are dropped and remade);
//  3. every node refuses plain TCP, gossips with the key and the cluster's
//     label, and its API asks for the token.
//
// In each phase a node accepts what the nodes one phase behind still send, so
// Raft never loses its leader over it and nothing written is lost. If the
// leader changes midway, running the command again on the new one goes on
// from where the log says the cluster is.

// ErrAlreadySecure is returned when the cluster already has secrets.
var ErrAlreadySecure = errors.New("this cluster has secrets already")

// ErrMembersDown is returned when securing the cluster needs members that are not up.
var ErrMembersDown = errors.New("every member must be up to receive its share of the secrets")

// phaseRank orders a node's phases: none, accepting TLS, dialling TLS, secure.
func phaseRank(b *trust.Bundle) int {
	switch {
	case b == nil:
		return fsm.PhaseOpen
	case b.Phase == trust.PhaseAcceptTLS:
		return fsm.PhaseAcceptTLS
	case b.Phase == trust.PhaseDialTLS:
		return fsm.PhaseDialTLS
	}
	return fsm.PhaseSecure
}

// ModeOf is the cluster port's mode for a node holding b.
func ModeOf(b *trust.Bundle) rpc.Mode {
	switch phaseRank(b) {
	case fsm.PhaseOpen:
		return rpc.ModeOpen
	case fsm.PhaseAcceptTLS:
		return rpc.ModeAcceptTLS
	case fsm.PhaseDialTLS:
		return rpc.ModeDialTLS
	}
	return rpc.ModeSecure
}

// SecureResult says what `pio security enable` did.
type SecureResult struct {
	// Members is how many members took their share and moved to TLS.
	Members int `json:"members"`
}

// EnableSecurity secures an open cluster (see above); it runs on the leader.
func (m *Manager) EnableSecurity(ctx context.Context, progress func(step string)) (SecureResult, error) {
	if !m.node.IsLeader() {
		return SecureResult{}, ErrNoLeader
	}
	if b := m.trust.Current(); b != nil && b.Phase == "" {
		return SecureResult{}, ErrAlreadySecure
	}
	say := func(s string) {
		if progress != nil {
			progress(s)
		}
		m.log.Info("securing the cluster: " + s)
	}
	var res SecureResult
	steps := []struct {
		phase int
		what  string
	}{
		{fsm.PhaseAcceptTLS, "every member takes its share of the secrets and accepts TLS"},
		{fsm.PhaseDialTLS, "every member dials TLS"},
		{fsm.PhaseSecure, "every member refuses plain connections, encrypts gossip and asks for the API token"},
	}
	for _, st := range steps {
		cur := m.fsm.SecurityPhase()
		if cur > st.phase {
			continue // done before a change of leader; a repeated phase only confirms it
		}
		p := fsm.SecurityPhase{Phase: st.phase}
		if cur == fsm.PhaseOpen {
			shares, err := m.shares()
			if err != nil {
				return res, err
			}
			p.Shares = shares
		}
		say(st.what)
		if err := m.securityStep(ctx, p, &res); err != nil {
			return res, err
		}
	}
	b := m.trust.Current()
	if b == nil {
		return res, errors.New("this node did not install its share of the secrets")
	}
	if err := m.apply(fsm.CmdSetGossipKeys, fsm.GossipKeys{Keys: b.Gossip.Keys, Primary: b.Gossip.Primary}); err != nil {
		return res, err
	}
	m.log.Info("the cluster is secured: print its tokens with `pio token` and `pio token --api`", "members", res.Members)
	return res, nil
}

// shares makes the secrets of the cluster and a share for every member.
func (m *Manager) shares() (map[string]json.RawMessage, error) {
	servers, err := m.node.Servers()
	if err != nil {
		return nil, err
	}
	if down := m.downMembers(); len(down) > 0 {
		return nil, fmt.Errorf("%w: %v are not up; start them, or remove them from the cluster first", ErrMembersDown, down)
	}
	b, err := trust.NewCluster(m.cfg.Self.NodeID)
	if err != nil {
		return nil, err
	}
	shares := make(map[string]json.RawMessage, len(servers))
	for _, s := range servers {
		data, err := b.Share(s.ID, trust.PhaseAcceptTLS)
		if err != nil {
			return nil, err
		}
		shares[s.ID] = data
	}
	return shares, nil
}

// securityStep applies one phase and waits until every member applied it.
func (m *Manager) securityStep(ctx context.Context, p fsm.SecurityPhase, res *SecureResult) error {
	idx, err := m.applyIndex(fsm.CmdSecurityPhase, p)
	if err != nil {
		return err
	}
	n, _, err := m.waitMembers(ctx, idx, true)
	if err != nil {
		return fmt.Errorf("%w: %v; bring them back and run `pio security enable` again", ErrMembersDown, err)
	}
	res.Members = n
	return nil
}

// downMembers names the members gossip does not see alive.
func (m *Manager) downMembers() []string {
	servers, err := m.node.Servers()
	if err != nil {
		return []string{err.Error()}
	}
	states := m.g().States()
	var down []string
	for _, s := range servers {
		if s.ID == m.cfg.Self.NodeID {
			continue
		}
		if st, ok := states[s.ID]; !ok || st.Health != HealthAlive {
			name := s.ID
			if u, ok := m.fsm.UnitByID(s.ID); ok {
				name = u.Name
			}
			down = append(down, name)
		}
	}
	return down
}

// securityApplied is the FSM subscription of a node of a cluster being
// secured: it moves this node to the phase it applies, never back (a
// restarted node replays phases it went through already).
func (m *Manager) securityApplied(c fsm.Change) {
	if c.Cmd == nil || c.Cmd.Type != fsm.CmdSecurityPhase || c.Result.Err != nil {
		return
	}
	var p fsm.SecurityPhase
	if err := json.Unmarshal(c.Cmd.Payload, &p); err != nil {
		return
	}
	cur := m.trust.Current()
	if p.Phase <= phaseRank(cur) {
		return
	}
	var next *trust.Bundle
	switch p.Phase {
	case fsm.PhaseAcceptTLS:
		share, ok := p.Shares[m.cfg.Self.NodeID]
		if !ok {
			m.log.Error("the cluster was secured without a share for this node: it cannot talk to the others any more",
				"remediation", "remove this node from the cluster and join it again with the cluster's token")
			return
		}
		b, err := trust.OpenShare(share, m.cfg.Self.NodeID)
		if err != nil {
			m.log.Error("cannot open this node's share of the cluster's secrets", "error", err)
			return
		}
		next = b
	case fsm.PhaseDialTLS:
		next = cur.WithPhase(trust.PhaseDialTLS)
	case fsm.PhaseSecure:
		next = cur.WithPhase("")
	}
	if err := m.trust.Set(next); err != nil {
		m.log.Error("cannot save this node's secrets", "error", err)
		return
	}
	m.cfg.Transport.SetMode(ModeOf(next))
	m.rpc.Reset()
	switch p.Phase {
	case fsm.PhaseDialTLS:
		go m.node.CloseStreams() // Raft's open connections are made again, with TLS (not on Raft's apply goroutine)
	case fsm.PhaseSecure:
		if err := syncKeyring(m.keyring, next.Gossip); err != nil {
			m.log.Error("cannot install the gossip keyring", "error", err)
		}
		select {
		case m.gossipRestart <- struct{}{}:
		default:
		}
	}
	m.log.Info("moved to the next phase of securing the cluster", "phase", p.Phase)
}
