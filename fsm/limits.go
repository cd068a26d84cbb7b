package fsm

import (
	"encoding/json"
	"fmt"
	"math"
	"unicode/utf8"
)

// Bounds of what one command may carry. Every node holds the whole cluster
// database and the last request IDs in memory, so nothing a client sends may
// grow them without a bound. The API checks the same limits first, with the
// same functions, and answers 400; Apply refuses what gets past it.
const (
	// MaxDescriptionLen is the longest experiment description, in characters.
	MaxDescriptionLen = 4000
	// MaxTags is how many tags an experiment may have.
	MaxTags = 50
	// MaxTagLen is the longest tag, in characters.
	MaxTagLen = 100
	// MaxMaterialLen is the longest media_used or organism_used of an experiment, in characters.
	MaxMaterialLen = 1000
	// MaxLabelLen is the longest unit label, in characters.
	MaxLabelLen = 100
	// MaxModelLen is the longest model_name or model_version of a unit, in characters.
	MaxModelLen = 100
	// MaxNodeIDLen is the longest node ID (node IDs are UUIDs, 36 characters).
	MaxNodeIDLen = 64
	// MaxAddrLen is the longest address (HOST:PORT) of a unit.
	MaxAddrLen = 255
	// MaxEventLen is the longest message of an event-log entry, in bytes.
	MaxEventLen = 4096

	// MaxBatchReadings is how many readings one batch may carry.
	MaxBatchReadings = 1000
	// MaxBatchLogs is how many log lines one batch may carry.
	MaxBatchLogs = 1000
	// MaxBatchJobs is how many jobs one job report may carry.
	MaxBatchJobs = 64
	// MaxLogMessageLen is the longest log message, in bytes.
	MaxLogMessageLen = 4096
	// MaxJobNameLen is the longest job name (a log line's task, a job report's job_name).
	MaxJobNameLen = 64
	// MaxJobSettingsLen is the longest job's settings in a job report, as JSON bytes.
	MaxJobSettingsLen = 8192
)

// maxWordLen bounds short identifiers: a reading's kind, a job's state, an event's kind.
const maxWordLen = 64

// ValidDescription explains why d is not a valid experiment description, or returns "".
func ValidDescription(d string) string {
	if n := utf8.RuneCountInString(d); n > MaxDescriptionLen {
		return fmt.Sprintf("the description is %d characters long; at most %d are allowed", n, MaxDescriptionLen)
	}
	return ""
}

// ValidTags explains why tags are not valid experiment tags, or returns "":
// at most MaxTags tags, each 1 to MaxTagLen characters.
func ValidTags(tags []string) string {
	if len(tags) > MaxTags {
		return fmt.Sprintf("%d tags; at most %d are allowed", len(tags), MaxTags)
	}
	for _, t := range tags {
		if n := utf8.RuneCountInString(t); n < 1 || n > MaxTagLen {
			return fmt.Sprintf("tags must be 1 to %d characters; one is %d", MaxTagLen, n)
		}
	}
	return ""
}

// ValidLabel explains why l is not a valid unit label, or returns "" (the empty label clears one).
func ValidLabel(l string) string {
	if n := utf8.RuneCountInString(l); n > MaxLabelLen {
		return fmt.Sprintf("the label is %d characters long; at most %d are allowed", n, MaxLabelLen)
	}
	return ""
}

// ValidModel explains why a unit's model_name or model_version is not valid, or returns "".
func ValidModel(name, version string) string {
	for _, f := range []struct{ field, v string }{{"model_name", name}, {"model_version", version}} {
		if n := utf8.RuneCountInString(f.v); n > MaxModelLen {
			return fmt.Sprintf("%s is %d characters long; at most %d are allowed", f.field, n, MaxModelLen)
		}
	}
	return ""
}

// ValidMaterials explains why an experiment's media_used or organism_used is
// not valid, or returns "": at most MaxMaterialLen characters each.
func ValidMaterials(media, organism string) string {
	if why := validText("media_used", media, MaxMaterialLen); why != "" {
		return why
	}
	return validText("organism_used", organism, MaxMaterialLen)
}

// validText explains why a free-text field is longer than max characters, or returns "".
func validText(field, v string, max int) string {
	if n := utf8.RuneCountInString(v); n > max {
		return fmt.Sprintf("%s is %d characters long; at most %d are allowed", field, n, max)
	}
	return ""
}

// ValidNodeID explains why id is not a valid node ID, or returns "": 1 to
// MaxNodeIDLen characters of the request IDs' alphabet (a UUID fits).
func ValidNodeID(id string) string {
	switch {
	case id == "":
		return "the node ID is empty"
	case len(id) > MaxNodeIDLen:
		return fmt.Sprintf("the node ID is %d characters long; at most %d are allowed", len(id), MaxNodeIDLen)
	case !onlyOf(id, "._:-"):
		return "the node ID may only hold letters, digits, '.', '_', ':' and '-'"
	}
	return ""
}

// ValidAddrs explains why one of a unit's addresses is too long, or returns "".
func ValidAddrs(addrs ...string) string {
	for _, a := range addrs {
		if len(a) > MaxAddrLen {
			return fmt.Sprintf("an address is %d bytes long; at most %d are allowed", len(a), MaxAddrLen)
		}
	}
	return ""
}

// ValidReadings explains why a batch of readings, log lines and job report
// may not be stored, or returns "": at most MaxBatchReadings readings,
// MaxBatchLogs log lines and MaxBatchJobs jobs, each valid (ValidReading,
// ValidLogEntry, ValidJobRecord), and a valid node ID in the job report.
func ValidReadings(p RecordReadings) string {
	switch {
	case len(p.Readings) > MaxBatchReadings:
		return fmt.Sprintf("%d readings in one batch; at most %d are allowed", len(p.Readings), MaxBatchReadings)
	case len(p.Logs) > MaxBatchLogs:
		return fmt.Sprintf("%d log lines in one batch; at most %d are allowed", len(p.Logs), MaxBatchLogs)
	case p.Jobs != nil && len(p.Jobs.Jobs) > MaxBatchJobs:
		return fmt.Sprintf("%d jobs in one report; at most %d are allowed", len(p.Jobs.Jobs), MaxBatchJobs)
	}
	for i, r := range p.Readings {
		if why := ValidReading(r); why != "" {
			return fmt.Sprintf("reading %d: %s", i, why)
		}
	}
	for i, l := range p.Logs {
		if why := ValidLogEntry(l); why != "" {
			return fmt.Sprintf("log line %d: %s", i, why)
		}
	}
	if p.Jobs != nil {
		if why := ValidNodeID(p.Jobs.NodeID); why != "" {
			return "job report: " + why
		}
		for i, j := range p.Jobs.Jobs {
			if why := ValidJobRecord(j); why != "" {
				return fmt.Sprintf("job %d: %s", i, why)
			}
		}
	}
	return ""
}

// ValidReading explains why a reading may not be stored, or returns "": a
// valid unit and experiment name, a kind, a time and a finite value.
func ValidReading(r Reading) string {
	switch {
	case ValidUnitName(r.Unit) != "":
		return ValidUnitName(r.Unit)
	case ValidExperimentName(r.Experiment) != "":
		return ValidExperimentName(r.Experiment)
	case r.Kind == "" || len(r.Kind) > maxWordLen:
		return fmt.Sprintf("kind must be 1 to %d characters", maxWordLen)
	case r.Time.IsZero():
		return "time is missing"
	case math.IsNaN(r.Value) || math.IsInf(r.Value, 0):
		return "value must be a finite number, not NaN or infinite"
	}
	return ""
}

// ValidLogEntry explains why a log line may not be stored, or returns "": a
// valid unit name, a valid experiment name (or UniversalExperiment), a
// timestamp, a known level, a message of at most MaxLogMessageLen bytes and
// a task (job name) of at most MaxJobNameLen characters.
func ValidLogEntry(l LogEntry) string {
	switch {
	case ValidUnitName(l.Unit) != "":
		return ValidUnitName(l.Unit)
	case l.Experiment != UniversalExperiment && ValidExperimentName(l.Experiment) != "":
		return ValidExperimentName(l.Experiment)
	case l.Time.IsZero():
		return "timestamp is missing"
	case !knownLevel(l.Level):
		return fmt.Sprintf("level %s is not DEBUG, INFO, NOTICE, WARNING or ERROR", quoteShort(l.Level))
	case len(l.Message) > MaxLogMessageLen:
		return fmt.Sprintf("the message is %d bytes long; at most %d are allowed", len(l.Message), MaxLogMessageLen)
	case utf8.RuneCountInString(l.Task) > MaxJobNameLen:
		return fmt.Sprintf("the task (job name) is longer than %d characters", MaxJobNameLen)
	}
	return ""
}

// ValidJobRecord explains why a job of a job report may not be stored, or
// returns "": a job name of 1 to MaxJobNameLen characters, a valid experiment
// name (or none), a short state, and settings of at most MaxJobSettingsLen
// bytes of JSON.
func ValidJobRecord(j JobRecord) string {
	switch {
	case j.Name == "" || utf8.RuneCountInString(j.Name) > MaxJobNameLen:
		return fmt.Sprintf("job_name must be 1 to %d characters", MaxJobNameLen)
	case j.Experiment != "" && ValidExperimentName(j.Experiment) != "":
		return ValidExperimentName(j.Experiment)
	case len(j.State) > maxWordLen:
		return fmt.Sprintf("state is longer than %d characters", maxWordLen)
	}
	if b, err := json.Marshal(j.Settings); err != nil || len(b) > MaxJobSettingsLen {
		return fmt.Sprintf("settings must encode to at most %d bytes of JSON", MaxJobSettingsLen)
	}
	return ""
}

func knownLevel(l string) bool {
	_, ok := LogLevels[l]
	return ok
}

// invalidName wraps ErrInvalidName with why.
func invalidName(why string) error { return fmt.Errorf("%w: %s", ErrInvalidName, why) }

// badPayload wraps ErrBadPayload with why.
func badPayload(why string) error { return fmt.Errorf("%w: %s", ErrBadPayload, why) }

// check refuses a registration with an invalid name, node ID, addresses or model.
func (p RegisterUnit) check() error {
	if why := ValidUnitName(p.Name); why != "" {
		return invalidName(why)
	}
	for _, why := range []string{ValidNodeID(p.NodeID), ValidAddrs(p.RaftAddr, p.HTTPAddr, p.GossipAddr), ValidModel(p.ModelName, p.ModelVersion), ValidModel(p.OwnModelName, p.OwnModelVersion)} {
		if why != "" {
			return badPayload(why)
		}
	}
	return nil
}

// check refuses a new experiment with an invalid name or free text over its limits.
func (p CreateExperiment) check() error {
	if why := ValidExperimentName(p.Experiment); why != "" {
		return invalidName(why)
	}
	for _, why := range []string{ValidDescription(p.Description), ValidTags(p.Tags), ValidMaterials(p.MediaUsed, p.OrganismUsed)} {
		if why != "" {
			return badPayload(why)
		}
	}
	return nil
}

// check refuses a description or tags over their limits.
func (p UpdateExperiment) check() error {
	if p.Description != nil {
		if why := ValidDescription(*p.Description); why != "" {
			return badPayload(why)
		}
	}
	if p.Tags != nil {
		if why := ValidTags(*p.Tags); why != "" {
			return badPayload(why)
		}
	}
	return nil
}

// check refuses an event with a kind or message over their limits.
func (p RecordEvent) check() error {
	if len(p.Kind) > maxWordLen || len(p.Message) > MaxEventLen || len(p.Unit) > maxWordLen || len(p.NodeID) > MaxNodeIDLen {
		return badPayload(fmt.Sprintf("an event's kind, unit and node ID are at most %d characters, its message %d bytes", maxWordLen, MaxEventLen))
	}
	return nil
}
