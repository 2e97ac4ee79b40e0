package wdl

import (
	"sort"
	"strings"
)

// culture is what the engine's .NET CultureInfo supplies to float, isFloat, decimal,
// formatNumber, formatDateTime and parseDateTime: separators, names and standard patterns.
//
// The data of each culture carried is that of .NET's CultureInfo on current Windows and ICU
// (CLDR), checked against the outputs Microsoft's functions reference documents
// (https://learn.microsoft.com/azure/logic-apps/expression-functions-reference): formatNumber
// with is-IS, float with de-DE, formatDateTime with fr-FR and es-ES, parseDateTime with fr-FR and
// es-ES. golang.org/x/text was considered and not used: it exposes CLDR number symbols only
// through its own formatter (not .NET format strings) and no month or day names or date
// patterns at all, so it could not have supplied what these functions need.
type culture struct {
	name string

	// Numbers (System.Globalization.NumberFormatInfo).
	decimal, group string
	currency       string
	currencyPos    int // CurrencyPositivePattern: 0 "$n", 1 "n$", 2 "$ n", 3 "n $"
	currencyNeg    int // CurrencyNegativePattern, the .NET table in currencyNegPatterns
	currencyDigits int
	percentPos     int // PercentPositivePattern: 0 "n %", 1 "n%", 2 "%n", 3 "% n"
	percentNeg     int // PercentNegativePattern: 0 "-n %", 1 "-n%", 2 "-%n", ...

	// Dates (System.Globalization.DateTimeFormatInfo).
	months, monthsAbbr [12]string
	days, daysAbbr     [7]string
	am, pm             string
	dateSep, timeSep   string
	shortDate          string // "d"
	longDate           string // "D"
	shortTime          string // "t"
	longTime           string // "T"
	monthDay           string // "M", "m"
	yearMonth          string // "Y", "y"
	// order of day, month and year in a date written with numbers only, for parsing
	order string
	// words a long date carries besides names and numbers ("de" in "20 de octubre de 2020")
	fillers []string
}

var (
	englishMonths = [12]string{"January", "February", "March", "April", "May", "June", "July",
		"August", "September", "October", "November", "December"}
	englishMonthsAbbr = [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
	englishDays       = [7]string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}
	englishDaysAbbr   = [7]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}
)

var invariantCulture = &culture{
	name: "", decimal: ".", group: ",", currency: "¤", currencyPos: 0, currencyNeg: 0, currencyDigits: 2,
	percentPos: 0, percentNeg: 0,
	months: englishMonths, monthsAbbr: englishMonthsAbbr, days: englishDays, daysAbbr: englishDaysAbbr,
	am: "AM", pm: "PM", dateSep: "/", timeSep: ":",
	shortDate: "MM/dd/yyyy", longDate: "dddd, dd MMMM yyyy", shortTime: "HH:mm", longTime: "HH:mm:ss",
	monthDay: "MMMM dd", yearMonth: "yyyy MMMM", order: "MDY",
}

var enUS = &culture{
	name: "en-US", decimal: ".", group: ",", currency: "$", currencyPos: 0, currencyNeg: 1, currencyDigits: 2,
	percentPos: 1, percentNeg: 1,
	months: englishMonths, monthsAbbr: englishMonthsAbbr, days: englishDays, daysAbbr: englishDaysAbbr,
	am: "AM", pm: "PM", dateSep: "/", timeSep: ":",
	shortDate: "M/d/yyyy", longDate: "dddd, MMMM d, yyyy", shortTime: "h:mm tt", longTime: "h:mm:ss tt",
	monthDay: "MMMM d", yearMonth: "MMMM yyyy", order: "MDY",
}

// cultures are the cultures carried, by lower-case name; a neutral name ("de") means its
// country's culture as .NET resolves it.
var cultures = map[string]*culture{
	"":      invariantCulture,
	"en-us": enUS,
	"en":    enUS,
	"de-de": {
		name: "de-DE", decimal: ",", group: ".", currency: "€", currencyPos: 3, currencyNeg: 8, currencyDigits: 2,
		percentPos: 0, percentNeg: 0,
		months: [12]string{"Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September",
			"Oktober", "November", "Dezember"},
		monthsAbbr: [12]string{"Jan.", "Feb.", "März", "Apr.", "Mai", "Juni", "Juli", "Aug.", "Sept.", "Okt.", "Nov.", "Dez."},
		days:       [7]string{"Sonntag", "Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag"},
		daysAbbr:   [7]string{"So.", "Mo.", "Di.", "Mi.", "Do.", "Fr.", "Sa."},
		am:         "AM", pm: "PM", dateSep: ".", timeSep: ":",
		shortDate: "dd.MM.yyyy", longDate: "dddd, d. MMMM yyyy", shortTime: "HH:mm", longTime: "HH:mm:ss",
		monthDay: "d. MMMM", yearMonth: "MMMM yyyy", order: "DMY", fillers: []string{"um"},
	},
	"fr-fr": {
		name: "fr-FR", decimal: ",", group: "\u202f", currency: "€", currencyPos: 3, currencyNeg: 8, currencyDigits: 2,
		percentPos: 0, percentNeg: 0,
		months: [12]string{"janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
			"octobre", "novembre", "décembre"},
		monthsAbbr: [12]string{"janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc."},
		days:       [7]string{"dimanche", "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi"},
		daysAbbr:   [7]string{"dim.", "lun.", "mar.", "mer.", "jeu.", "ven.", "sam."},
		am:         "AM", pm: "PM", dateSep: "/", timeSep: ":",
		shortDate: "dd/MM/yyyy", longDate: "dddd d MMMM yyyy", shortTime: "HH:mm", longTime: "HH:mm:ss",
		monthDay: "d MMMM", yearMonth: "MMMM yyyy", order: "DMY", fillers: []string{"à", "le"},
	},
	"es-es": {
		name: "es-ES", decimal: ",", group: ".", currency: "€", currencyPos: 3, currencyNeg: 8, currencyDigits: 2,
		percentPos: 0, percentNeg: 0,
		months: [12]string{"enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre",
			"octubre", "noviembre", "diciembre"},
		monthsAbbr: [12]string{"ene.", "feb.", "mar.", "abr.", "may.", "jun.", "jul.", "ago.", "sept.", "oct.", "nov.", "dic."},
		days:       [7]string{"domingo", "lunes", "martes", "miércoles", "jueves", "viernes", "sábado"},
		daysAbbr:   [7]string{"dom.", "lun.", "mar.", "mié.", "jue.", "vie.", "sáb."},
		am:         "a. m.", pm: "p. m.", dateSep: "/", timeSep: ":",
		shortDate: "dd/MM/yyyy", longDate: "dddd, d 'de' MMMM 'de' yyyy", shortTime: "H:mm", longTime: "H:mm:ss",
		monthDay: "d 'de' MMMM", yearMonth: "MMMM 'de' yyyy", order: "DMY", fillers: []string{"de", "del", "a", "las"},
	},
	"is-is": {
		name: "is-IS", decimal: ",", group: ".", currency: "kr", currencyPos: 3, currencyNeg: 8, currencyDigits: 0,
		percentPos: 0, percentNeg: 0,
		months: [12]string{"janúar", "febrúar", "mars", "apríl", "maí", "júní", "júlí", "ágúst", "september",
			"október", "nóvember", "desember"},
		monthsAbbr: [12]string{"jan.", "feb.", "mar.", "apr.", "maí", "jún.", "júl.", "ágú.", "sep.", "okt.", "nóv.", "des."},
		days: [7]string{"sunnudagur", "mánudagur", "þriðjudagur", "miðvikudagur", "fimmtudagur", "föstudagur",
			"laugardagur"},
		daysAbbr: [7]string{"sun.", "mán.", "þri.", "mið.", "fim.", "fös.", "lau."},
		am:       "f.h.", pm: "e.h.", dateSep: ".", timeSep: ":",
		shortDate: "d.M.yyyy", longDate: "dddd, d. MMMM yyyy", shortTime: "HH:mm", longTime: "HH:mm:ss",
		monthDay: "d. MMMM", yearMonth: "MMMM yyyy", order: "DMY", fillers: []string{"kl."},
	},
}

func init() {
	cultures["de"] = cultures["de-de"]
	cultures["fr"] = cultures["fr-fr"]
	cultures["es"] = cultures["es-es"]
	cultures["is"] = cultures["is-is"]
}

// lookupCulture finds a culture by its RFC 4646 name, ignoring case ("fr-fr" is fr-FR); ""
// is the invariant culture.
func lookupCulture(name string) (*culture, error) {
	if c, ok := cultures[strings.ToLower(strings.TrimSpace(name))]; ok {
		return c, nil
	}
	return nil, failf("does not know the locale '%s': dvrouter carries %s", name, carriedCultures())
}

func carriedCultures() string {
	var names []string
	for k, c := range cultures {
		if k != "" && strings.Contains(k, "-") {
			names = append(names, c.name)
		}
	}
	sort.Strings(names)
	return strings.Join(names, ", ") + " and the invariant culture ''"
}

// localeArg returns the culture an optional locale argument names (present says whether it was
// given), or def.
func localeArg(v value, present bool, def *culture) (*culture, error) {
	if !present {
		return def, nil
	}
	if v.k != kStr {
		return nil, failf("expects its locale to be a string, got %s", v.typeName())
	}
	return lookupCulture(v.s)
}
