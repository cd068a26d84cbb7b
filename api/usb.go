package api

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// unitUSB answers GET /unit_api/usb as Pioreactor does for a Pi with no USB
// drive: pio neither mounts drives nor installs from them (it is updated as
// one binary, and its data is exported over HTTP), and Pioreactor's UI asks
// on every page.
func (s *Server) unitUSB(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "absent", "partitions": []any{}, "active_mount": nil})
}
