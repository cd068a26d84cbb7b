package gpio

import (
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// Plant is the simulated bioreactor behind the sim backend: a culture whose
// optical density follows a logistic growth curve with noise, a vial whose
// temperature follows heater power and the ambient temperature, a stirrer
// whose RPM follows its duty cycle, and a media pump that adds media at its
// rate while it runs (diluting the culture). The physics are simple on
// purpose; the control loops on top of them are real.
type Plant struct {
	mu sync.Mutex
	r  *rand.Rand

	OD           float64 // optical density
	GrowthRate   float64 // per hour, at low density
	CarryingOD   float64 // OD the culture saturates at
	TempC        float64 // vial temperature
	AmbientC     float64
	HeaterDuty   float64 // 0..100 %
	StirDuty     float64 // 0..100 %
	RPM          float64
	VolumeML     float64
	DosedML      float64 // media added in total
	LEDIntensity float64
	MediaDuty    float64 // 0..100 %: the media pump
	// PumpMLPerSecond is what the media pump moves at 100 %: Pioreactor's
	// default pump calibration, so that a dose of V ml takes as long as on a
	// Pioreactor that was never calibrated.
	PumpMLPerSecond float64
}

// DefaultPumpMLPerSecond is Pioreactor's default pump calibration (ml/s at
// 100 % duty), used until a pump is calibrated.
const DefaultPumpMLPerSecond = 0.0911

// NewPlant returns a plant at room temperature with a young culture.
func NewPlant(seed uint64) *Plant {
	return &Plant{r: rand.New(rand.NewPCG(seed, 7)), OD: 0.05, GrowthRate: 0.6, CarryingOD: 2.0,
		TempC: 22, AmbientC: 22, VolumeML: 14, PumpMLPerSecond: DefaultPumpMLPerSecond}
}

// Step advances the plant by dt (simulated time).
func (p *Plant) Step(dt time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := dt.Hours()
	s := dt.Seconds()
	// Growth is fastest near 37 °C.
	rate := p.GrowthRate * math.Exp(-math.Pow((p.TempC-37)/8, 2))
	p.OD += rate * p.OD * (1 - p.OD/p.CarryingOD) * h
	// Heater: up to ~0.05 °C/s at full power; loss to ambient.
	p.TempC += (0.05*p.HeaterDuty/100 - 0.002*(p.TempC-p.AmbientC)) * s
	// Stirrer: RPM follows 12 RPM per % duty with a 1 s time constant.
	target := 12 * p.StirDuty
	p.RPM += (target - p.RPM) * math.Min(1, s)
	// The media pump adds media while it runs; waste removes as much.
	if p.MediaDuty > 0 {
		p.dose(p.PumpMLPerSecond * p.MediaDuty / 100 * s)
	}
}

// Dose adds ml of fresh media and removes the same volume of culture.
func (p *Plant) Dose(ml float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dose(ml)
}

func (p *Plant) dose(ml float64) {
	if ml <= 0 || math.IsInf(ml, 0) || math.IsNaN(ml) {
		return
	}
	p.OD *= p.VolumeML / (p.VolumeML + ml)
	p.DosedML += ml
}

// ReadOD returns the OD with measurement noise.
func (p *Plant) ReadOD() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return math.Max(0, p.OD*(1+0.01*p.r.NormFloat64()))
}

// ReadTemp returns the vial temperature with sensor noise.
func (p *Plant) ReadTemp() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.TempC + 0.02*p.r.NormFloat64()
}

// ReadRPM returns the stirrer's RPM.
func (p *Plant) ReadRPM() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.RPM
}

// SetHeater sets the heater duty cycle (0..100).
func (p *Plant) SetHeater(duty float64) {
	p.mu.Lock()
	p.HeaterDuty = clamp(duty, 0, 100)
	p.mu.Unlock()
}

// SetTemp sets the vial's temperature (a simulated overshoot, in tests).
func (p *Plant) SetTemp(c float64) {
	p.mu.Lock()
	p.TempC = c
	p.mu.Unlock()
}

// SetStir sets the stirrer duty cycle (0..100).
func (p *Plant) SetStir(duty float64) {
	p.mu.Lock()
	p.StirDuty = clamp(duty, 0, 100)
	p.mu.Unlock()
}

// Snapshot returns a copy of the plant's state, for /unit_api/hardware.
func (p *Plant) Snapshot() map[string]float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return map[string]float64{"od": p.OD, "temperature_c": p.TempC, "heater_duty": p.HeaterDuty, "stir_duty": p.StirDuty,
		"rpm": p.RPM, "volume_ml": p.VolumeML, "dosed_ml": p.DosedML, "media_pump_duty": p.MediaDuty}
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }
