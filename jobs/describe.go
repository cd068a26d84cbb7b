package jobs

import (
	"errors"
	"fmt"
	"slices"
	"sort"
)

// This file says how the jobs of the catalog are shown to people: the
// names, labels, units and descriptions that Pioreactor's UI reads from its
// job and automation descriptors. The catalog says what a job does; its
// presentation here must cover every job and setting of it (a test checks).

// settingText presents one setting of a job.
type settingText struct {
	key, label, unit, description string
}

// automationText presents one automation of an automation job (one value
// of its automation_name): the settings it uses, in the order a form shows them.
type automationText struct {
	name, displayName, description string
	fields                         []string
}

// jobText presents a job: its settings in the order the UI shows them, and,
// for an automation job, its family (Pioreactor's automation_type) and automations.
type jobText struct {
	displayName, description string
	settings                 []settingText
	family                   string
	automations              []automationText
}

// presentation is the text of each job of the catalog.
var presentation = map[string]jobText{
	"stirring": {
		displayName: "Stirring",
		description: "Spins the stir bar at a target speed, held by a control loop on the measured RPM. Mixing keeps the culture even and the OD readings steady.",
		settings: []settingText{
			{"target_rpm", "Target RPM", "RPM", "The stir bar's speed the loop holds. Too slow and the bar may stall; too fast and the vortex disturbs the optics."},
			{"measured_rpm", "Measured RPM", "RPM", "The speed the hall sensor measures."},
		},
	},
	"od_reading": {
		displayName: "Optical density",
		description: "Reads the culture's optical density at a fixed interval: the IR LED shines through the vial and two photodiodes measure the light.",
		settings: []settingText{
			{"interval", "Reading interval", "s", "Seconds between two readings."},
			{"ir_led_intensity", "IR LED intensity", "%", "Power of the IR LED during a reading."},
			{"od", "Optical density", "", "The latest reading (signal over reference)."},
		},
	},
	"growth_rate_calculating": {
		displayName: "Growth rate",
		description: "Estimates the culture's growth rate from this unit's OD readings (start Optical density first).",
		settings: []settingText{
			{"growth_rate", "Growth rate", "h⁻¹", "The latest estimate."},
		},
	},
	"temperature_automation": {
		displayName: "Temperature automation",
		description: "Controls the heater: a thermostat that holds a target temperature, or only recording the temperature.",
		family:      "temperature",
		settings: []settingText{
			{"target_temperature", "Target temperature", "℃", "The temperature the thermostat holds. The heater cannot cool: targets below the room's temperature are not reached."},
			{"automation_name", "Automation", "", "The running automation."},
			{"temperature", "Temperature", "℃", "The latest temperature of the heating surface."},
		},
		automations: []automationText{
			{"thermostat", "Thermostat", "Holds the culture at a target temperature: a control loop sets the heater's power from the measured temperature.", []string{"target_temperature"}},
			{"only_record_temperature", "Only record temperature", "Leaves the heater off and records the temperature.", nil},
		},
	},
	"dosing_automation": {
		displayName: "Dosing automation",
		description: "Exchanges media: the media pump adds a volume, then the waste pump removes as much.",
		family:      "dosing",
		settings: []settingText{
			{"duration", "Time between checks", "min", "Minutes between two dosing decisions."},
			{"volume", "Exchange volume", "mL", "Volume of media exchanged at each dose."},
			{"target_od", "Target OD", "OD", "The turbidostat doses when the latest OD is over this value."},
			{"automation_name", "Automation", "", "The running automation."},
		},
		automations: []automationText{
			{"turbidostat", "Turbidostat", "Keeps the culture's density near a target: whenever the latest OD is over the target, exchanges a volume of media.", []string{"target_od", "volume", "duration"}},
			{"chemostat", "Chemostat", "Exchanges a fixed volume of media at a fixed interval.", []string{"volume", "duration"}},
		},
	},
	"led_automation": {
		displayName: "LED automation",
		description: "Drives the white LED.",
		family:      "led",
		settings: []settingText{
			{"light_intensity", "Light intensity", "%", "Power of the white LED."},
			{"light_duration_minutes", "Light duration", "min", "Minutes of light in a cycle. Kept with the job; this version keeps the LED on at its intensity, with no dark phase."},
			{"dark_duration_minutes", "Dark duration", "min", "Minutes of dark in a cycle. Kept with the job; this version keeps the LED on at its intensity, with no dark phase."},
			{"automation_name", "Automation", "", "The running automation."},
		},
		automations: []automationText{
			{"light_dark_cycle", "Light", "Keeps the white LED on at a set intensity.", []string{"light_intensity"}},
		},
	},
}

// SettingDescriptor is one setting of a job in Pioreactor's shape (its
// PublishedSettingsDescriptor): key, type (numeric, boolean, string or
// json), whether the UI shows it, its label and unit, whether a user may
// change it, and its bounds. Default is null, as in Pioreactor's job
// descriptors (the UI would show it as the value of a job not running);
// a job's defaults are in Descriptor.Settings.
type SettingDescriptor struct {
	Key         string   `json:"key"`
	Type        string   `json:"type"`
	Display     bool     `json:"display"`
	Description string   `json:"description"`
	Default     any      `json:"default"`
	Unit        *string  `json:"unit"`
	Label       string   `json:"label"`
	Editable    bool     `json:"editable"`
	Min         *float64 `json:"min"`
	Max         *float64 `json:"max"`
}

// AutomationField is one field of an automation's form, in Pioreactor's
// shape (its AutomationFieldsDescriptor): the setting's key, its default
// (what the form starts with), label, unit, type (numeric, string, select
// or boolean) and options (for a select; null otherwise).
type AutomationField struct {
	Key      string   `json:"key"`
	Default  any      `json:"default"`
	Label    string   `json:"label"`
	Disabled bool     `json:"disabled"`
	Required bool     `json:"required"`
	Unit     *string  `json:"unit"`
	Type     string   `json:"type"`
	Options  []string `json:"options"`
	// Min and Max bound a numeric field (ours; Pioreactor's has none).
	Min *float64 `json:"min,omitempty"`
	Max *float64 `json:"max,omitempty"`
}

// AutomationDescriptor is one automation of a family (temperature, dosing
// or led) in Pioreactor's shape: the value of automation_name that runs it,
// its name and description, and the fields of its form. JobName (ours) is
// the job that runs it.
type AutomationDescriptor struct {
	DisplayName    string            `json:"display_name"`
	AutomationName string            `json:"automation_name"`
	Description    string            `json:"description"`
	Source         string            `json:"source"`
	Fields         []AutomationField `json:"fields"`
	JobName        string            `json:"job_name"`
}

// ErrUnknownAutomationType is returned for an automation type that is not
// one of AutomationFamilies.
var ErrUnknownAutomationType = errors.New("not a valid automation type")

// AutomationFamilies are the automation types of Pioreactor's routes
// (/api/automations/descriptors/{type}).
var AutomationFamilies = []string{"dosing", "led", "temperature"}

// source is what Pioreactor's descriptors call the origin of a job that
// comes with the software (not a plugin).
const source = "app"

// settingType is Pioreactor's type name of a setting's values.
func settingType(s setting) string {
	switch s.def.(type) {
	case float64, int:
		return "numeric"
	case bool:
		return "boolean"
	case string:
		return "string"
	}
	return "json"
}

// bounds returns a numeric setting's range with lim, or nils.
func (s setting) bounds(lim Limits) (lo, hi *float64) {
	if _, ok := s.def.(float64); !ok || s.measured {
		return nil, nil
	}
	mn, mx := s.min, s.max
	if s.maxOf != nil {
		mx = s.maxOf(lim)
	}
	return &mn, &mx
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// present fills the fields of d that Pioreactor's UI reads: its name,
// description, subtext and published settings.
func present(d *Descriptor, def definition, lim Limits) {
	t := presentation[d.Name]
	d.DisplayName, d.Description, d.Display, d.Source = t.displayName, t.description, true, source
	if t.family != "" {
		d.Subtext = optional("automation_name")
	}
	d.PublishedSettings = make([]SettingDescriptor, 0, len(t.settings))
	for _, st := range t.settings {
		s := def.settings[st.key]
		// The automation is shown as the job's subtext, measurements by
		// their charts: neither is a setting of the card.
		shown := !s.measured && st.key != "automation_name"
		sd := SettingDescriptor{Key: st.key, Type: settingType(s), Display: shown, Description: st.description,
			Unit: optional(st.unit), Label: st.label, Editable: !s.measured}
		sd.Min, sd.Max = s.bounds(lim)
		d.PublishedSettings = append(d.PublishedSettings, sd)
	}
}

// Automations lists the automations of a family (temperature, dosing or
// led) with the bounds of lim, in the order the UI offers them.
func Automations(family string, lim Limits) ([]AutomationDescriptor, error) {
	if !slices.Contains(AutomationFamilies, family) {
		return nil, fmt.Errorf("%w: %q (types: dosing, led, temperature)", ErrUnknownAutomationType, family)
	}
	var names []string
	for n, t := range presentation {
		if t.family == family {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	out := []AutomationDescriptor{}
	for _, job := range names {
		def := catalog[job]
		for _, a := range presentation[job].automations {
			ad := AutomationDescriptor{DisplayName: a.displayName, AutomationName: a.name, Description: a.description,
				Source: source, JobName: job, Fields: make([]AutomationField, 0, len(a.fields))}
			for _, k := range a.fields {
				s := def.settings[k]
				f := AutomationField{Key: k, Default: s.def, Label: textOf(job, k).label, Required: true,
					Unit: optional(textOf(job, k).unit), Type: settingType(s)}
				if len(s.oneOf) > 0 {
					f.Type, f.Options = "select", s.oneOf
				}
				f.Min, f.Max = s.bounds(lim)
				ad.Fields = append(ad.Fields, f)
			}
			out = append(out, ad)
		}
	}
	return out, nil
}

// textOf returns the presentation of a job's setting.
func textOf(job, key string) settingText {
	for _, st := range presentation[job].settings {
		if st.key == key {
			return st
		}
	}
	return settingText{key: key, label: key}
}

// Automations lists the automations of a family that this unit can run:
// those whose sensors its hardware has.
func (r *Runtime) Automations(family string) ([]AutomationDescriptor, error) {
	all, err := Automations(family, r.cfg.Limits)
	if err != nil {
		return nil, err
	}
	out := make([]AutomationDescriptor, 0, len(all))
	for _, a := range all {
		def := catalog[a.JobName]
		settings := def.defaults()
		settings["automation_name"] = a.AutomationName
		if r.missing(def.needs(settings)) == "" {
			out = append(out, a)
		}
	}
	return out, nil
}

// missing says which of sensors this unit's hardware lacks, and why ("" if none).
func (r *Runtime) missing(sensors []string) string {
	for _, s := range sensors {
		if err := r.cfg.Hardware.Sensor(s); err != nil {
			return err.Error()
		}
	}
	return ""
}

// jobOrder is the order of the jobs on Pioreactor's cards.
var jobOrder = []string{"stirring", "od_reading", "growth_rate_calculating", "temperature_automation", "dosing_automation", "led_automation"}
