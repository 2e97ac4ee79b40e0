package odata

// parseGUID parses a GUID in its 36-character form, optionally in braces, in any case. The bytes
// are laid out as .NET's Guid.ToByteArray does (the first three groups little-endian), which is
// the layout SQL Server orders uniqueidentifier values by.
func parseGUID(s string) ([16]byte, bool) {
	var g [16]byte
	if len(s) == 38 && s[0] == '{' && s[37] == '}' {
		s = s[1:37]
	}
	if len(s) != 36 || !guidAt(s, 0) {
		return g, false
	}
	// Byte positions of each hex pair in the text, in .NET byte order.
	pairs := [16]int{6, 4, 2, 0, 11, 9, 16, 14, 19, 21, 24, 26, 28, 30, 32, 34}
	for i, at := range pairs {
		g[i] = hexVal(s[at])<<4 | hexVal(s[at+1])
	}
	return g, true
}

func hexVal(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c|0x20 >= 'a' && c|0x20 <= 'f':
		return c | 0x20 - 'a' + 10
	}
	return 0
}

// sqlGUIDOrder is the byte significance SQL Server uses to order uniqueidentifier values: the
// last six bytes first, the first four last.
var sqlGUIDOrder = [16]int{10, 11, 12, 13, 14, 15, 8, 9, 6, 7, 4, 5, 0, 1, 2, 3}

func compareGUID(a, b *[16]byte) int {
	for _, i := range sqlGUIDOrder {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}
