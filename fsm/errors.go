package fsm

import (
	"errors"
	"fmt"
	"strings"
)

// ErrUnknownCommand is returned for a command type or version this FSM does not know.
var ErrUnknownCommand = errors.New("unknown command")

// ErrBadPayload is returned when a command's payload cannot be decoded or is incomplete.
var ErrBadPayload = errors.New("bad command payload")

// ErrExperimentExists is returned when creating an experiment whose name is taken.
var ErrExperimentExists = errors.New("experiment already exists")

// ErrExperimentNotFound is returned when a command names an experiment that does not exist.
var ErrExperimentNotFound = errors.New("experiment not found")

// ErrUnitNotFound is returned when a command names a unit that is not in the inventory.
var ErrUnitNotFound = errors.New("unit not found")

// ErrNameTaken is returned when a unit would take a name another node already holds.
var ErrNameTaken = errors.New("unit name held by another node")

// ErrNotAssigned is returned when unassigning a unit that is not assigned to that experiment.
var ErrNotAssigned = errors.New("unit not assigned to that experiment")

// ErrRemoved is returned when a node that was removed from the cluster would
// be registered again without being explicitly added back.
var ErrRemoved = errors.New("node was removed from the cluster")

// ErrNotWorker is returned when a node that is not a worker would be assigned to an experiment.
var ErrNotWorker = errors.New("unit is not a worker")

// ErrInvalidName is returned when a command would create a unit or an
// experiment whose name breaks the naming rules (ValidUnitName, ValidExperimentName).
var ErrInvalidName = errors.New("invalid name")

// sentinels lists the errors an outcome may carry, so a retried command
// answers with the same error value as its first application.
var sentinels = []error{
	ErrUnknownCommand, ErrBadPayload, ErrExperimentExists, ErrExperimentNotFound,
	ErrUnitNotFound, ErrNameTaken, ErrNotAssigned, ErrRemoved, ErrNotWorker, ErrInvalidName,
	ErrProfileNotFound, ErrProfileExists, ErrRunNotFound, ErrRunEnded, ErrTooMany,
}

// errorFromString turns a stored outcome back into its sentinel error; an
// outcome that wrapped a sentinel ("invalid name: why") wraps it again.
func errorFromString(s string) error {
	if s == "" {
		return nil
	}
	for _, e := range sentinels {
		if e.Error() == s {
			return e
		}
		if rest, ok := strings.CutPrefix(s, e.Error()+": "); ok {
			return fmt.Errorf("%w: %s", e, rest)
		}
	}
	return errors.New(s)
}
