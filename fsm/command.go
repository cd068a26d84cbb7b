package fsm

import (
	"bytes"
	"compress/flate"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Version is the command envelope version this FSM writes and understands.
const Version = 1

// CommandType names what a command does.
type CommandType string

// The command types of the cluster database.
const (
	// CmdRegisterUnit adds a node to the inventory or updates its addresses and role.
	CmdRegisterUnit CommandType = "register_unit"
	// CmdRemoveUnit takes a node out of the inventory; its history stays.
	CmdRemoveUnit CommandType = "remove_unit"
	// CmdCreateExperiment creates an experiment.
	CmdCreateExperiment CommandType = "create_experiment"
	// CmdAssign puts a unit in an experiment, moving it out of any other.
	CmdAssign CommandType = "assign"
	// CmdUnassign takes a unit out of an experiment.
	CmdUnassign CommandType = "unassign"
	// CmdSetActive sets a unit's is_active flag.
	CmdSetActive CommandType = "set_active"
	// CmdRecordEvent appends an event to the cluster's event log.
	CmdRecordEvent CommandType = "record_event"
	// CmdUpdateExperiment changes an experiment's description or tags.
	CmdUpdateExperiment CommandType = "update_experiment"
	// CmdDeleteExperiment deletes an experiment and ends its assignments.
	CmdDeleteExperiment CommandType = "delete_experiment"
	// CmdUnassignAll takes every unit out of an experiment.
	CmdUnassignAll CommandType = "unassign_all"
	// CmdSetUnitLabel sets (or, with an empty label, clears) a unit's label in an experiment.
	CmdSetUnitLabel CommandType = "set_unit_label"
	// CmdUnassignEverywhere takes every unit out of whatever experiment it is
	// in (Pioreactor's DELETE /api/workers/assignments). It has no payload.
	CmdUnassignEverywhere CommandType = "unassign_everywhere"
	// CmdReadmit lifts the tombstone of a removed node that proved the
	// cluster's join secret: it may be added again.
	CmdReadmit CommandType = "readmit"
)

// UpdateExperiment is the payload of CmdUpdateExperiment; nil fields are left as they are.
type UpdateExperiment struct {
	Experiment  string    `json:"experiment"`
	Description *string   `json:"description,omitempty"`
	Tags        *[]string `json:"tags,omitempty"`
}

// ExperimentRef is the payload of CmdDeleteExperiment and CmdUnassignAll.
type ExperimentRef struct {
	Experiment string `json:"experiment"`
}

// SetUnitLabel is the payload of CmdSetUnitLabel.
type SetUnitLabel struct {
	Experiment string `json:"experiment"`
	Unit       string `json:"pioreactor_unit"`
	Label      string `json:"label"`
}

// Command is the envelope of every change to the cluster database. Time is
// set by the proposing node; Apply uses it as "now".
type Command struct {
	V         int             `json:"v"`
	Type      CommandType     `json:"type"`
	RequestID string          `json:"request_id"`
	Time      time.Time       `json:"time"`
	Payload   json.RawMessage `json:"payload"`
}

// RegisterUnit is the payload of CmdRegisterUnit.
type RegisterUnit struct {
	NodeID       string `json:"node_id"`
	Name         string `json:"name"`
	Worker       bool   `json:"worker"`
	RaftAddr     string `json:"raft_addr"`
	HTTPAddr     string `json:"http_addr"`
	GossipAddr   string `json:"gossip_addr,omitempty"`
	ModelName    string `json:"model_name,omitempty"`
	ModelVersion string `json:"model_version,omitempty"`
	// OwnModelName and OwnModelVersion are the model the node is configured
	// with (its --model), sent by the node itself: they fill in a unit's
	// model only while it has none, so a model chosen by a user stays.
	OwnModelName    string `json:"own_model_name,omitempty"`
	OwnModelVersion string `json:"own_model_version,omitempty"`
	// Readd is set when a node is explicitly added (joined): it lifts the
	// tombstone of a node that was removed before. Registrations from gossip
	// never set it, so a removed node cannot come back by itself.
	Readd bool `json:"readd,omitempty"`
}

// RemoveUnit is the payload of CmdRemoveUnit.
type RemoveUnit struct {
	NodeID string `json:"node_id"`
}

// CreateExperiment is the payload of CmdCreateExperiment.
type CreateExperiment struct {
	Experiment   string   `json:"experiment"`
	Description  string   `json:"description,omitempty"`
	Tags         []string `json:"tags,omitempty"`
	MediaUsed    string   `json:"media_used,omitempty"`
	OrganismUsed string   `json:"organism_used,omitempty"`
}

// Assign is the payload of CmdAssign and CmdUnassign.
type Assign struct {
	Unit       string `json:"pioreactor_unit"`
	Experiment string `json:"experiment"`
}

// SetActive is the payload of CmdSetActive.
type SetActive struct {
	Unit     string `json:"pioreactor_unit"`
	IsActive int    `json:"is_active"`
}

// RecordEvent is the payload of CmdRecordEvent.
type RecordEvent struct {
	Kind    string `json:"kind"`
	NodeID  string `json:"node_id,omitempty"`
	Unit    string `json:"pioreactor_unit,omitempty"`
	Message string `json:"message"`
}

// NewCommand builds a command envelope around payload.
func NewCommand(t CommandType, requestID string, now time.Time, payload any) (Command, error) {
	raw, err := json.Marshal(payload)
	if err != nil {
		return Command{}, fmt.Errorf("encode %s payload: %w", t, err)
	}
	return Command{V: Version, Type: t, RequestID: requestID, Time: now.UTC(), Payload: raw}, nil
}

// An encoded command longer than compressAbove bytes goes into the Raft log
// compressed (DEFLATE), after the byte compressedMark, which no JSON starts
// with: an entry of gathered readings shrinks about four times, and every
// byte of an entry is written to every node's disk. A compressed entry
// inflates to at most maxEntryBytes.
const (
	compressAbove  = 512
	compressedMark = 0x01
	maxEntryBytes  = 16 << 20
)

// Encode returns the bytes of cmd as they go into the Raft log.
func (c Command) Encode() ([]byte, error) {
	b, err := json.Marshal(c)
	if err != nil || len(b) <= compressAbove {
		return b, err
	}
	var z bytes.Buffer
	z.WriteByte(compressedMark)
	w, _ := flate.NewWriter(&z, flate.DefaultCompression)
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if z.Len() >= len(b) {
		return b, nil
	}
	return z.Bytes(), nil
}

// DecodeCommand parses a log entry written by Encode.
func DecodeCommand(b []byte) (Command, error) {
	if len(b) > 0 && b[0] == compressedMark {
		r := flate.NewReader(bytes.NewReader(b[1:]))
		plain, err := io.ReadAll(io.LimitReader(r, maxEntryBytes+1))
		r.Close()
		if err != nil || len(plain) > maxEntryBytes {
			return Command{}, fmt.Errorf("%w: a compressed entry that does not inflate (%v)", ErrBadPayload, err)
		}
		b = plain
	}
	var c Command
	if err := json.Unmarshal(b, &c); err != nil {
		return Command{}, fmt.Errorf("%w: %v", ErrBadPayload, err)
	}
	if c.V != Version {
		return Command{}, fmt.Errorf("%w: version %d", ErrUnknownCommand, c.V)
	}
	c.Time = c.Time.UTC()
	return c, nil
}
