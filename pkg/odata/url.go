package odata

// PathSafe says which bytes url.PathEscape leaves as they are in a path segment: what a key
// literal in an entity's address (Table Storage's, the Web API's) keeps unencoded, for the
// writers that percent-encode one without url's allocations. Read only.
var PathSafe = func() (keep [256]bool) {
	for c := range 256 {
		keep[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
	}
	for _, c := range "-_.~$&+:=@" {
		keep[c] = true
	}
	return keep
}()
