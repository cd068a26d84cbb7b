package fsm

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// CmdSetGossipKeys replaces the cluster's gossip keyring. Every node installs
// it when it applies it, so a key rotation reaches nodes that were down too.
const CmdSetGossipKeys CommandType = "set_gossip_keys"

// GossipKeys is the payload of CmdSetGossipKeys: every key members accept,
// and the one they encrypt with.
type GossipKeys struct {
	Keys    [][]byte `json:"keys"`
	Primary []byte   `json:"primary"`
}

// maxGossipKeys bounds the replicated keyring.
const maxGossipKeys = 4

// validate checks a keyring: 1 to 4 keys of 32 bytes, none twice, the primary among them.
func (k GossipKeys) validate() error {
	if len(k.Keys) == 0 || len(k.Keys) > maxGossipKeys {
		return fmt.Errorf("%w: %d gossip keys", ErrBadPayload, len(k.Keys))
	}
	primary := false
	for i, key := range k.Keys {
		if len(key) != 32 {
			return fmt.Errorf("%w: a gossip key of %d bytes", ErrBadPayload, len(key))
		}
		for _, other := range k.Keys[:i] {
			if bytes.Equal(key, other) {
				return fmt.Errorf("%w: a gossip key twice", ErrBadPayload)
			}
		}
		primary = primary || bytes.Equal(key, k.Primary)
	}
	if !primary {
		return fmt.Errorf("%w: the primary gossip key is not in the keyring", ErrBadPayload)
	}
	return nil
}

func (k GossipKeys) clone() *GossipKeys {
	c := &GossipKeys{Primary: append([]byte(nil), k.Primary...)}
	for _, key := range k.Keys {
		c.Keys = append(c.Keys, append([]byte(nil), key...))
	}
	return c
}

// GossipKeyring returns the cluster's gossip keyring; ok is false until one was set.
func (f *FSM) GossipKeyring() (k GossipKeys, ok bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.s.gossip == nil {
		return GossipKeys{}, false
	}
	return *f.s.gossip.clone(), true
}

// CmdSecurityPhase moves a cluster made without secrets (an open cluster)
// one phase towards secrets, mutual TLS and keys (`pio security enable`). The
// first phase carries the secrets, each member's share sealed for it; each
// node installs its own when it applies the command.
const CmdSecurityPhase CommandType = "security_phase"

// The phases of securing an open cluster. In each, a node accepts what the
// nodes one phase behind still send, so no connection is refused while the
// cluster moves: plain and TLS accepted, plain dialled; both accepted, TLS
// dialled; then TLS only, gossip encrypted, and the API token required.
const (
	PhaseOpen      = 0
	PhaseAcceptTLS = 1
	PhaseDialTLS   = 2
	PhaseSecure    = 3
)

// SecurityPhase is the payload of CmdSecurityPhase.
type SecurityPhase struct {
	Phase int `json:"phase"`
	// Shares are, in the first phase, each member's share of the secrets by
	// node ID (opaque here: package trust makes and opens them).
	Shares map[string]json.RawMessage `json:"shares,omitempty"`
}

// maxShares bounds the members a security phase carries shares for.
const maxShares = 1000

// applySecurityPhase moves the phase on by one; a repeated phase is a no-op,
// so a coordinator that resumes after a leader change may send it again.
func (s *state) applySecurityPhase(p SecurityPhase) error {
	switch {
	case p.Phase == s.securityPhase:
		return nil
	case p.Phase != s.securityPhase+1 || p.Phase > PhaseSecure:
		return fmt.Errorf("%w: security phase %d after %d", ErrBadPayload, p.Phase, s.securityPhase)
	case p.Phase == PhaseAcceptTLS && (len(p.Shares) == 0 || len(p.Shares) > maxShares):
		return fmt.Errorf("%w: the first security phase carries the members' shares", ErrBadPayload)
	}
	s.securityPhase = p.Phase
	return nil
}

// SecurityPhase returns how far this open cluster is on its way to secrets
// (PhaseOpen for a cluster that never was open, or has not started).
func (f *FSM) SecurityPhase() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.s.securityPhase
}
