package pds

import (
	"fmt"
	"net/netip"
	"strings"
)

// loadRateLimits reads the rate-limit and proxy settings.
func (c *Config) loadRateLimits(getenv Getenv) error {
	var err error
	if c.RateLimitsEnabled, err = boolEnv(getenv, "PDS_RATE_LIMITS_ENABLED", true); err != nil {
		return err
	}
	c.RateLimitBypassKey = getenv("PDS_RATE_LIMIT_BYPASS_KEY")
	for _, ip := range splitList(getenv("PDS_RATE_LIMIT_BYPASS_IPS")) {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return fmt.Errorf("PDS_RATE_LIMIT_BYPASS_IPS: %q is not an IP address", ip)
		}
		c.RateLimitBypassIPs = append(c.RateLimitBypassIPs, a.Unmap().String())
	}
	proxies := getenv("PDS_TRUSTED_PROXIES")
	if proxies == "" {
		proxies = "127.0.0.0/8,::1/128,169.254.0.0/16,fe80::/10,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"
	}
	if strings.TrimSpace(proxies) != "none" {
		for _, p := range splitList(proxies) {
			pfx, err := netip.ParsePrefix(p)
			if err != nil {
				a, aerr := netip.ParseAddr(p)
				if aerr != nil {
					return fmt.Errorf("PDS_TRUSTED_PROXIES: %q is not an IP address or CIDR range", p)
				}
				pfx = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
			}
			c.TrustedProxies = append(c.TrustedProxies, pfx.Masked())
		}
	}
	// The reference trusts X-Forwarded-For from its bypass IPs too.
	for _, ip := range c.RateLimitBypassIPs {
		a := netip.MustParseAddr(ip)
		c.TrustedProxies = append(c.TrustedProxies, netip.PrefixFrom(a, a.BitLen()))
	}
	return nil
}
