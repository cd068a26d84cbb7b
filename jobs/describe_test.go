package jobs

import (
	"errors"
	"slices"
	"testing"

	"github.com/pioreactor/pio/gpio"
)

// Every job and setting of the catalog is presented, and nothing else is;
// each automation's fields are settings of its job and its name one of the
// job's automation_name values, all of them covered.
func TestPresentationCoversTheCatalog(t *testing.T) {
	if len(presentation) != len(catalog) || len(jobOrder) != len(catalog) {
		t.Fatalf("%d jobs presented, %d ordered, %d in the catalog", len(presentation), len(jobOrder), len(catalog))
	}
	for name, def := range catalog {
		p, ok := presentation[name]
		if !ok || p.displayName == "" || p.description == "" || !slices.Contains(jobOrder, name) {
			t.Fatalf("%s is not presented: %+v", name, p)
		}
		seen := map[string]bool{}
		for _, st := range p.settings {
			if _, ok := def.settings[st.key]; !ok || seen[st.key] || st.label == "" || st.description == "" {
				t.Errorf("%s: bad setting text %+v", name, st)
			}
			seen[st.key] = true
		}
		if len(seen) != len(def.settings) {
			t.Errorf("%s: %d of %d settings presented", name, len(seen), len(def.settings))
		}
		an, isAuto := def.settings["automation_name"]
		if isAuto != (p.family != "") {
			t.Errorf("%s: automation_name %v, family %q", name, isAuto, p.family)
		}
		var names []string
		for _, a := range p.automations {
			names = append(names, a.name)
			for _, f := range a.fields {
				if s, ok := def.settings[f]; !ok || s.measured || f == "automation_name" {
					t.Errorf("%s/%s: field %q is not a settable setting", name, a.name, f)
				}
			}
		}
		if isAuto && !slices.Equal(names, an.oneOf) {
			t.Errorf("%s: automations %v, automation_name takes %v", name, names, an.oneOf)
		}
	}
}

// The descriptors are renderable by Pioreactor's UI, as its own checks
// demand: unique keys, a label for each displayed setting, min ≤ max, a
// known type; the bounds are the unit's.
func TestDescriptorsAsPioreactorChecksThem(t *testing.T) {
	lim, _ := LimitsFor("pioreactor_20ml")
	for _, d := range Catalog(lim) {
		if d.DisplayName == "" || d.Source != "app" || !d.Display || d.PublishedSettings == nil {
			t.Fatalf("%s: %+v", d.Name, d)
		}
		keys := map[string]bool{}
		for _, s := range d.PublishedSettings {
			if keys[s.Key] || (s.Display && s.Label == "") || !slices.Contains([]string{"numeric", "boolean", "string", "json"}, s.Type) ||
				(s.Min != nil && s.Max != nil && *s.Min > *s.Max) || s.Default != nil {
				t.Errorf("%s: %+v", d.Name, s)
			}
			keys[s.Key] = true
			if d.Name == "dosing_automation" && s.Key == "volume" && (s.Max == nil || *s.Max != lim.MaxFillML) {
				t.Errorf("volume's bound is not the 20 ml vial's: %+v", s)
			}
		}
		if (d.Subtext != nil) != (presentation[d.Name].family != "") || (d.Subtext != nil && !keys[*d.Subtext]) {
			t.Errorf("%s: subtext %v", d.Name, d.Subtext)
		}
	}
	got := Catalog(lim)
	for i, d := range got {
		if d.Name != jobOrder[i] {
			t.Fatalf("order: %d is %s, want %s", i, d.Name, jobOrder[i])
		}
	}
}

func TestAutomations(t *testing.T) {
	lim := DefaultLimits()
	want := map[string][]string{"temperature": {"thermostat", "only_record_temperature"}, "dosing": {"turbidostat", "chemostat"}, "led": {"light_dark_cycle"}}
	for fam, names := range want {
		as, err := Automations(fam, lim)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, a := range as {
			got = append(got, a.AutomationName)
			if a.Fields == nil || a.Source != "app" || a.Description == "" || a.JobName != fam+"_automation" {
				t.Errorf("%+v", a)
			}
			for _, f := range a.Fields {
				if f.Default == nil || f.Label == "" || !f.Required || f.Type != "numeric" || f.Min == nil || *f.Min > *f.Max {
					t.Errorf("%s: %+v", a.AutomationName, f)
				}
			}
		}
		if !slices.Equal(got, names) {
			t.Errorf("%s: %v, want %v", fam, got, names)
		}
	}
	if _, err := Automations("ph", lim); !errors.Is(err, ErrUnknownAutomationType) {
		t.Fatalf("ph: %v", err)
	}
}

// A unit lists the automations and jobs its HAT can run: without a
// temperature sensor, no temperature automation and the job not displayed;
// without OD, the chemostat but no turbidostat.
func TestUnitAutomationsFollowItsHardware(t *testing.T) {
	r, sim := newRuntime(t, 13, nil)
	sim.Remove(gpio.SensorTemperature)
	sim.Remove(gpio.SensorOD)
	if as, err := r.Automations("temperature"); err != nil || len(as) != 0 {
		t.Fatalf("temperature without a sensor: %v %v", as, err)
	}
	as, err := r.Automations("dosing")
	if err != nil || len(as) != 1 || as[0].AutomationName != "chemostat" {
		t.Fatalf("dosing without OD: %+v %v", as, err)
	}
	for _, d := range r.Descriptors() {
		if d.Display != *d.Available {
			t.Errorf("%s: display %v, available %v", d.Name, d.Display, *d.Available)
		}
		if d.Name == "stirring" && !d.Display || d.Name == "temperature_automation" && d.Display {
			t.Errorf("%s: display %v", d.Name, d.Display)
		}
	}
}
