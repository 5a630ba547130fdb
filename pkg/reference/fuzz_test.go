package reference

import (
	"errors"
	"slices"
	"testing"
)

// FuzzLoad feeds arbitrary content as each reference file: Load must never panic, and every
// failure must be an *Error naming a reference file (a changed facilities file can make the
// sensors file fail).
func FuzzLoad(f *testing.F) {
	f.Add(0, fixtureFacilities)
	f.Add(1, fixtureSensors)
	f.Add(2, fixtureTAC)
	f.Add(3, fixtureOperators)
	f.Add(1, "sensor_id,facility_id\n\"a\nb\",ma-a\n")
	f.Add(2, "tac,manufacturer,model\n99999999999,x,y\n")
	f.Fuzz(func(t *testing.T, which int, data string) {
		if which < 0 {
			which = -which
		}
		name := Files[which%len(Files)]
		s, err := Load(fixture(map[string]string{name: data}))
		if err != nil {
			var re *Error
			if !errors.As(err, &re) || !slices.Contains(Files, re.File) {
				t.Fatalf("error %v is not an *Error about a reference file", err)
			}
			return
		}
		if s.Stats().Facilities == 0 {
			t.Fatal("loaded a snapshot without facilities")
		}
	})
}
