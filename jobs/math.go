package jobs

import "math"

func ln(x float64) float64 { return math.Log(x) }

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }
