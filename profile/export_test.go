package profile

// ValidUnitNameForTest lets the external tests compare validUnitName with fsm's.
var ValidUnitNameForTest = validUnitName
