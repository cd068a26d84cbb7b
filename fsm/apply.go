package fsm

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// decode unmarshals a payload strictly.
func decode(raw json.RawMessage, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%w: %v", ErrBadPayload, err)
	}
	return nil
}

// apply changes the state for one command; it uses no clock but cmd.Time.
func (s *state) apply(cmd Command) error {
	switch cmd.Type {
	case CmdRegisterUnit:
		var p RegisterUnit
		if err := decode(cmd.Payload, &p); err != nil {
			return err
		}
		return s.registerUnit(p, cmd.Time)
	case CmdRemoveUnit:
		var p RemoveUnit
		if err := decode(cmd.Payload, &p); err != nil {
			return err
		}
		return s.removeUnit(p.NodeID, cmd.Time)
	case CmdCreateExperiment:
		var p CreateExperiment
		if err := decode(cmd.Payload, &p); err != nil {
			return err
		}
		if p.Experiment == "" {
			return ErrBadPayload
		}
		if err := p.check(); err != nil {
			return err
		}
		return s.createExperiment(p, cmd.Time)
	case CmdAssign:
		var p Assign
		if err := decode(cmd.Payload, &p); err != nil {
			return err
		}
		return s.assign(p, cmd.Time)
	case CmdUnassign:
		var p Assign
		if err := decode(cmd.Payload, &p); err != nil {
			return err
		}
		return s.unassign(p, cmd.Time)
	case CmdSetActive:
		var p SetActive
		if err := decode(cmd.Payload, &p); err != nil {
			return err
		}
		u := s.unitByName(p.Unit)
		if u == nil {
			return ErrUnitNotFound
		}
		if p.IsActive != 0 && p.IsActive != 1 {
			return ErrBadPayload
		}
		u.IsActive = p.IsActive
		return nil
	case CmdUpdateExperiment:
		var p UpdateExperiment
		if err := decode(cmd.Payload, &p); err != nil {
			return err
		}
		if err := p.check(); err != nil {
			return err
		}
		e, ok := s.experiments[p.Experiment]
		if !ok {
			return ErrExperimentNotFound
		}
		if p.Description != nil {
			e.Description = *p.Description
		}
		if p.Tags != nil {
			e.Tags = append([]string{}, (*p.Tags)...)
		}
		return nil
	case CmdDeleteExperiment, CmdUnassignAll:
		var p ExperimentRef
		if err := decode(cmd.Payload, &p); err != nil {
			return err
		}
		if _, ok := s.experiments[p.Experiment]; !ok {
			return ErrExperimentNotFound
		}
		s.unassignAll(p.Experiment, cmd.Time)
		if cmd.Type == CmdDeleteExperiment {
			s.stopRunsOf(p.Experiment, cmd.Time)
			delete(s.experiments, p.Experiment)
			delete(s.labels, p.Experiment)
		}
		return nil
	case CmdUnassignEverywhere:
		ids := make([]string, 0, len(s.assignments))
		for id := range s.assignments {
			ids = append(ids, id)
		}
		sort.Strings(ids) // deterministic order of history updates
		for _, id := range ids {
			s.closeAssignment(id, cmd.Time)
		}
		return nil
	case CmdSetUnitLabel:
		var p SetUnitLabel
		if err := decode(cmd.Payload, &p); err != nil {
			return err
		}
		if why := ValidLabel(p.Label); why != "" {
			return badPayload(why)
		}
		if _, ok := s.experiments[p.Experiment]; !ok {
			return ErrExperimentNotFound
		}
		u := s.unitByName(p.Unit)
		if u == nil {
			return ErrUnitNotFound
		}
		if p.Label == "" {
			delete(s.labels[p.Experiment], u.NodeID)
			return nil
		}
		if s.labels[p.Experiment] == nil {
			s.labels[p.Experiment] = map[string]string{}
		}
		s.labels[p.Experiment][u.NodeID] = p.Label
		return nil
	case CmdSecurityPhase:
		var p SecurityPhase
		if err := decode(cmd.Payload, &p); err != nil {
			return err
		}
		return s.applySecurityPhase(p)
	case CmdReadmit:
		var p RemoveUnit
		if err := decode(cmd.Payload, &p); err != nil {
			return err
		}
		if i := s.tombstone(p.NodeID); i >= 0 {
			s.tombstones = append(s.tombstones[:i:i], s.tombstones[i+1:]...)
		}
		return nil
	case CmdSetGossipKeys:
		var p GossipKeys
		if err := decode(cmd.Payload, &p); err != nil {
			return err
		}
		if err := p.validate(); err != nil {
			return err
		}
		s.gossip = p.clone()
		return nil
	case CmdRecordEvent:
		var p RecordEvent
		if err := decode(cmd.Payload, &p); err != nil {
			return err
		}
		if err := p.check(); err != nil {
			return err
		}
		s.event(Event{Time: cmd.Time, Kind: p.Kind, NodeID: p.NodeID, Unit: p.Unit, Message: p.Message})
		return nil
	default:
		if ok, err := s.applyProfile(cmd); ok {
			return err
		}
		return fmt.Errorf("%w: %q", ErrUnknownCommand, cmd.Type)
	}
}

func (s *state) registerUnit(p RegisterUnit, now time.Time) error {
	if p.NodeID == "" || p.Name == "" {
		return ErrBadPayload
	}
	if err := p.check(); err != nil {
		return err
	}
	if other := s.unitByName(p.Name); other != nil && other.NodeID != p.NodeID {
		return ErrNameTaken
	}
	if i := s.tombstone(p.NodeID); i >= 0 {
		if !p.Readd {
			return ErrRemoved
		}
		s.tombstones = append(s.tombstones[:i:i], s.tombstones[i+1:]...)
	}
	u, ok := s.units[p.NodeID]
	if !ok {
		u = &Unit{NodeID: p.NodeID, AddedAt: now, IsActive: 1}
		s.units[p.NodeID] = u
		s.event(Event{Time: now, Kind: "joined", NodeID: p.NodeID, Unit: p.Name, Message: p.Name + " joined the cluster"})
	} else if u.Name != p.Name {
		s.event(Event{Time: now, Kind: "renamed", NodeID: p.NodeID, Unit: p.Name, Message: "renamed " + u.Name + " to " + p.Name})
	}
	u.Name, u.Worker = p.Name, p.Worker
	u.RaftAddr, u.HTTPAddr, u.GossipAddr = p.RaftAddr, p.HTTPAddr, p.GossipAddr
	if p.ModelName != "" {
		u.ModelName = p.ModelName
	}
	if p.ModelVersion != "" {
		u.ModelVersion = p.ModelVersion
	}
	if u.ModelName == "" && u.ModelVersion == "" {
		u.ModelName, u.ModelVersion = p.OwnModelName, p.OwnModelVersion
	}
	return nil
}

func (s *state) removeUnit(nodeID string, now time.Time) error {
	u, ok := s.units[nodeID]
	if !ok {
		return ErrUnitNotFound
	}
	s.closeAssignment(nodeID, now)
	delete(s.units, nodeID)
	if s.tombstone(nodeID) < 0 {
		s.tombstones = append(s.tombstones, Tombstone{NodeID: nodeID, Name: u.Name, RemovedAt: now})
		if len(s.tombstones) > maxTombstones {
			s.tombstones = append([]Tombstone{}, s.tombstones[1:]...)
		}
	}
	s.event(Event{Time: now, Kind: "removed", NodeID: nodeID, Unit: u.Name, Message: u.Name + " was removed from the cluster"})
	return nil
}

func (s *state) createExperiment(p CreateExperiment, now time.Time) error {
	if _, ok := s.experiments[p.Experiment]; ok {
		return ErrExperimentExists
	}
	tags := append([]string{}, p.Tags...)
	s.experiments[p.Experiment] = &Experiment{Experiment: p.Experiment, Description: p.Description, Tags: tags,
		MediaUsed: p.MediaUsed, OrganismUsed: p.OrganismUsed, CreatedAt: now}
	return nil
}

func (s *state) assign(p Assign, now time.Time) error {
	u := s.unitByName(p.Unit)
	if u == nil {
		return ErrUnitNotFound
	}
	if !u.Worker {
		return ErrNotWorker
	}
	if _, ok := s.experiments[p.Experiment]; !ok {
		return ErrExperimentNotFound
	}
	if s.assignments[u.NodeID] == p.Experiment {
		return nil
	}
	s.closeAssignment(u.NodeID, now)
	s.assignments[u.NodeID] = p.Experiment
	s.history = append(s.history, AssignmentRecord{NodeID: u.NodeID, Unit: u.Name, Experiment: p.Experiment, AssignedAt: now})
	return nil
}

func (s *state) unassign(p Assign, now time.Time) error {
	u := s.unitByName(p.Unit)
	if u == nil {
		return ErrUnitNotFound
	}
	if s.assignments[u.NodeID] != p.Experiment {
		return ErrNotAssigned
	}
	s.closeAssignment(u.NodeID, now)
	return nil
}

// closeAssignment ends the unit's current assignment, if any.
func (s *state) closeAssignment(nodeID string, now time.Time) {
	if _, ok := s.assignments[nodeID]; !ok {
		return
	}
	delete(s.assignments, nodeID)
	for i := len(s.history) - 1; i >= 0; i-- {
		if s.history[i].NodeID == nodeID && s.history[i].UnassignedAt == nil {
			t := now
			s.history[i].UnassignedAt = &t
			break
		}
	}
}

// unassignAll ends every assignment to the experiment.
func (s *state) unassignAll(exp string, now time.Time) {
	ids := make([]string, 0)
	for id, e := range s.assignments {
		if e == exp {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids) // deterministic order of history updates
	for _, id := range ids {
		s.closeAssignment(id, now)
	}
}
