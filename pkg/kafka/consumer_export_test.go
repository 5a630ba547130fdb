package kafka

import "time"

// SetTestIntervals shortens how long a failing handler takes to show in Ready and how
// often the lag of idle partitions is refreshed. Call it before Run.
func SetTestIntervals(c *Consumer, failAfter, lag time.Duration) {
	c.failAfter, c.lagInterval = failAfter, lag
}
