package redisprovider

import (
	"hash/fnv"
	"strconv"
	"strings"
	"testing"
)

// keysByConcat is keys as it was written before it built its four keys in
// one string: the reference that keys must match.
func keysByConcat(prefix, key string) (lock, fence, queue, alive string) {
	tag := key
	if strings.ContainsAny(key, "{}") {
		h := fnv.New64a()
		h.Write([]byte(key))
		tag = "#" + strconv.FormatUint(h.Sum64(), 16)
		lock = prefix + "{" + tag + "}" + key
	} else {
		lock = prefix + "{" + key + "}"
	}
	return lock, prefix + "{" + slotTag(slotOf(tag)) + "}:fences", lock + ":queue", lock + ":alive"
}

func TestKeysMatchConcatenation(t *testing.T) {
	for _, prefix := range []string{DefaultPrefix, "", "p:"} {
		for _, key := range []string{"k", "user:42", "a{b}c", "{", "}", "x{}", "ü:☃", strings.Repeat("z", 300)} {
			p := &Provider{prefix: prefix}
			l, f, q, a := p.keys(key)
			wl, wf, wq, wa := keysByConcat(prefix, key)
			if l != wl || f != wf || q != wq || a != wa {
				t.Errorf("keys(%q) with prefix %q = %q %q %q %q, want %q %q %q %q", key, prefix, l, f, q, a, wl, wf, wq, wa)
			}
		}
	}
}
