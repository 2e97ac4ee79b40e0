package dataverse

// What the row builder knows about lookups without asking the table's metadata: the lookup
// columns Dataverse puts on every table (or on every table of an ownership type), and their
// single-valued navigation properties. The Web API annotates a lookup's value with
// `@Microsoft.Dynamics.CRM.associatednavigationproperty`, the navigation property the value
// belongs to ("Lookup properties", Microsoft Learn: Web API Query data, and the EntityType
// pages of the Web API reference, which list these for every table).

const navSuffix = "@Microsoft.Dynamics.CRM.associatednavigationproperty"

// knownLookup is one lookup column whose Web API shape does not depend on the table.
type knownLookup struct {
	annotation string // "_x_value" + navSuffix
	// nav is the navigation property when it is the same whatever the target. It and byTarget's
	// values are strings boxed once, here: a row value is an interface, and boxing a string
	// for every lookup of every event would cost an allocation each.
	nav any
	// byTarget names the navigation property per target table, for a column that can point at
	// several (a Customer column: parentcustomerid_account, parentcustomerid_contact).
	byTarget map[string]any
}

// knownLookups are the system lookup columns: present on every table (createdby, modifiedby and
// the like), on every user- or team-owned table (ownerid, owninguser, owningteam,
// owningbusinessunit), on every organization-owned table (organizationid), and on every table
// with money columns (transactioncurrencyid); and the two standard Customer columns.
var knownLookups = func() map[string]knownLookup {
	m := map[string]knownLookup{}
	for _, col := range []string{
		"createdby", "modifiedby", "createdonbehalfby", "modifiedonbehalfby",
		"createdbyexternalparty", "modifiedbyexternalparty",
		"ownerid", "owninguser", "owningteam", "owningbusinessunit", "organizationid",
		"transactioncurrencyid",
	} {
		m[col] = knownLookup{annotation: "_" + col + "_value" + navSuffix, nav: col}
	}
	for _, col := range []string{"parentcustomerid", "customerid"} {
		m[col] = knownLookup{annotation: "_" + col + "_value" + navSuffix, byTarget: map[string]any{
			"account": col + "_account", "contact": col + "_contact",
		}}
	}
	return m
}()

// navigation returns the annotation key and navigation property (a string) of lookup col
// pointing at target, or false when it is not known.
func navigation(col, target string) (key string, nav any, ok bool) {
	k, found := knownLookups[col]
	if !found {
		return "", nil, false
	}
	if k.nav != nil {
		return k.annotation, k.nav, true
	}
	nav, ok = k.byTarget[target]
	return k.annotation, nav, ok
}

// isKnownLookup reports whether col is a lookup on every table that has it.
func isKnownLookup(col string) bool {
	_, ok := knownLookups[col]
	return ok
}

// Lookups names, per table logical name, columns that are lookups, for the lookups nothing in a
// body shows to be one: a custom lookup the Target clears and no image holds. The route file's
// `lookups:` key fills it. Logical names are lower case, as the context carries them.
type Lookups map[string][]string
