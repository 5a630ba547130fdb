package sink

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTimeRanges: the ranges cover every time, never overlap, cut at every gap wider than
// timeGap while there are few, and are at most maxRanges however sparse the times.
func TestTimeRanges(t *testing.T) {
	minute := timeGap.Milliseconds()
	require.Equal(t, [][2]int64{{5, 5}}, timeRanges([]int64{5}))
	require.Equal(t, [][2]int64{{0, 2 * minute}, {4 * minute, 4 * minute}},
		timeRanges([]int64{0, minute, 2 * minute, 4 * minute}), "cut at the gap wider than a minute only")

	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{2, 31, 32, 33, 1000, 5000} {
		ms := make([]int64, n)
		for i := range ms {
			ms[i] = rng.Int64N(90 * 24 * 60 * minute) // sparse: 90 days
		}
		slices.Sort(ms)
		rs := timeRanges(ms)
		require.LessOrEqual(t, len(rs), maxRanges, "n=%d", n)
		require.Equal(t, ms[0], rs[0][0])
		require.Equal(t, ms[n-1], rs[len(rs)-1][1])
		for i, r := range rs {
			require.LessOrEqual(t, r[0], r[1])
			if i > 0 {
				require.Greater(t, r[0], rs[i-1][1], "ranges in order, apart")
			}
		}
		for _, m := range ms {
			require.True(t, slices.ContainsFunc(rs, func(r [2]int64) bool { return r[0] <= m && m <= r[1] }), "n=%d: %d covered", n, m)
		}
		if n <= maxRanges {
			require.Len(t, rs, n, "few sparse times: one range each")
		}
	}
}
