package redisprovider

import "sync"

// Fence counters are shared per Cluster hash slot: the fences of key K come
// from the counter "<prefix>{S}:fences", where S is a short tag in K's hash
// slot, so the acquire script can INCR it beside K's lock (one slot), and
// at most 16384 counters exist however many keys were ever locked. One
// counter that only grows, shared by the keys of a slot, issues every key
// increasing fences. See docs/decisions.md ("Fence counters per hash slot").

// numSlots is the number of Redis Cluster hash slots.
const numSlots = 16384

// crcTable is the table of CRC16-XMODEM (polynomial 0x1021, initial value
// 0), the checksum that Redis Cluster takes modulo 16384 as a key's slot.
// go-redis computes it in an internal package, so it is built here.
var crcTable = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

// crc16 is CRC16-XMODEM of s.
func crc16(s string) uint16 {
	var c uint16
	for i := 0; i < len(s); i++ {
		c = c<<8 ^ crcTable[byte(c>>8)^s[i]]
	}
	return c
}

// slotOf is the Cluster slot of a key whose hash tag is tag.
func slotOf(tag string) uint16 { return crc16(tag) % numSlots }

// tagAlphabet spells the slot tags.
const tagAlphabet = "0123456789abcdefghijklmnopqrstuvwxyz"

// slotTags returns, for every slot, the shortest string over tagAlphabet
// (the first in length-then-alphabet order) whose slot it is, as up to 4
// bytes padded with 0. It is built once, on first use, in one sweep of
// about 170,000 checksums (a few milliseconds); 4 characters cover every
// slot (the sweep stops at the first string that completes the table).
var slotTags = sync.OnceValue(func() *[numSlots][4]byte {
	t := new([numSlots][4]byte)
	left := numSlots
	var buf [4]byte
	for n := 1; n <= len(buf) && left > 0; n++ {
		// Count through the n-character strings in base len(tagAlphabet).
		digits := make([]int, n)
		for {
			for i, d := range digits {
				buf[i] = tagAlphabet[d]
			}
			s := slotOf(string(buf[:n]))
			if t[s][0] == 0 {
				copy(t[s][:], buf[:n])
				if left--; left == 0 {
					return t
				}
			}
			i := n - 1
			for i >= 0 && digits[i] == len(tagAlphabet)-1 {
				digits[i] = 0
				i--
			}
			if i < 0 {
				break
			}
			digits[i]++
		}
	}
	if left > 0 {
		panic("redisprovider: slot tags do not cover every slot")
	}
	return t
})
