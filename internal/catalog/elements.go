package catalog

import "strings"

// elementNames maps English element names (and common spellings) to their
// symbols, so that "gold" finds the records in which gold was identified.
var elementNames = func() map[string]string {
	m := map[string]string{}
	for i, name := range strings.Fields(`hydrogen helium lithium beryllium boron carbon nitrogen oxygen fluorine neon
		sodium magnesium aluminium silicon phosphorus sulfur chlorine argon potassium calcium scandium titanium vanadium
		chromium manganese iron cobalt nickel copper zinc gallium germanium arsenic selenium bromine krypton rubidium
		strontium yttrium zirconium niobium molybdenum technetium ruthenium rhodium palladium silver cadmium indium tin
		antimony tellurium iodine xenon caesium barium lanthanum cerium praseodymium neodymium promethium samarium
		europium gadolinium terbium dysprosium holmium erbium thulium ytterbium lutetium hafnium tantalum tungsten
		rhenium osmium iridium platinum gold mercury thallium lead bismuth polonium astatine radon francium radium
		actinium thorium protactinium uranium`) {
		m[name] = symbols[i]
	}
	for alt, name := range map[string]string{"aluminum": "aluminium", "sulphur": "sulfur", "cesium": "caesium", "wolfram": "tungsten"} {
		m[alt] = m[name]
	}
	return m
}()

var symbols = strings.Fields(`H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se
	Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W
	Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U`)

// ElementSymbol returns the symbol of an element named in English ("gold":
// "Au"), or of a symbol in any case ("au": "Au"), and whether it is one.
func ElementSymbol(word string) (string, bool) {
	w := strings.ToLower(word)
	if s, ok := elementNames[w]; ok {
		return s, true
	}
	for _, s := range symbols {
		if strings.ToLower(s) == w {
			return s, true
		}
	}
	return "", false
}
