package catalog

import (
	"reflect"
	"testing"
)

func TestParseText(t *testing.T) {
	term := func(prefix bool, w ...string) Term { return Term{Words: w, Prefix: prefix} }
	for _, tc := range []struct {
		in   string
		want []Clause
	}{
		{"gold", []Clause{{Any: []Term{term(true, "gold"), term(false, "au")}}}},
		{"Au OR Pt", []Clause{{Any: []Term{term(false, "au"), term(false, "pt")}}}},
		{"platinum nickel", []Clause{{Any: []Term{term(true, "platinum"), term(false, "pt")}}, {Any: []Term{term(true, "nickel"), term(false, "ni")}}}},
		{"spectr", []Clause{{Any: []Term{term(true, "spectr")}}}},
		{`"in situ" -Cu NOT movie`, []Clause{{Any: []Term{term(false, "in", "situ")}}, {Any: []Term{term(false, "cu")}, Not: true}, {Any: []Term{term(true, "movie")}, Not: true}}},
		{"fe* 2017 Fe-Cr", []Clause{{Any: []Term{term(true, "fe")}}, {Any: []Term{term(false, "2017")}}, {Any: []Term{term(false, "fe", "cr")}}}},
		{"OR NOT <script>", []Clause{{Any: []Term{term(true, "script")}, Not: true}}},
	} {
		if got := ParseText(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.in, got, tc.want)
		}
	}
}
