"""An independent reference for practical salinity, written from TEOS-10's
gsw_sp_from_c (PSS-78, UNESCO 1983, with the Hill et al. 1986 low-salinity
extension scaled by HillRatio so the two meet at SP 2), not from
protocols/src/units.c. Checked here against the UNESCO and gsw values.

    sp_from_c(c_mscm, t90)   practical salinity at sea pressure 0
    c_from_sp(sp, t90)       its inverse, by bisection
"""
import math

A = (0.0080, -0.1692, 25.3851, 14.0941, -7.0261, 2.7081)
B = (0.0005, -0.0056, -0.0066, -0.0375, 0.0636, -0.0144)
C = (0.6766097, 2.00564e-2, 1.104259e-4, -6.9698e-7, 1.0031e-9)
K = 0.0162
G = (2.641463563366498e-1, 2.007883247811176e-4, -4.107694432853053e-6, 8.401670882091225e-8,
     -1.711392021989210e-9, 3.374193893377380e-11, -5.923731174730784e-13, 8.057771569962299e-15,
     -7.054313817447962e-17, 2.859992717347235e-19)
C3515 = 42.914  # mS/cm, Culkin & Smith (1980)


def _poly(coef, x):
    s = 0.0
    for v in reversed(coef):
        s = s * x + v
    return s


def _hill_ratio(t90):
    t68 = t90 * 1.00024
    ft = (t68 - 15) / (1 + K * (t68 - 15))

    def sp(r):
        return _poly(A, r) + ft * _poly(B, r)

    def dsp(r):
        return (sum(i * A[i] * r ** (i - 1) for i in range(1, 6)) +
                ft * sum(i * B[i] * r ** (i - 1) for i in range(1, 6)))
    r0 = _poly(G, t68)
    r1 = r0 - (sp(r0) - 2) / dsp(r0)
    r = r0 - (sp(r0) - 2) / dsp(0.5 * (r1 + r0))
    x, sy = 400 * r * r, 10 * r
    p1, p2 = 1 + x * (1.5 + x), 1 + sy * (1 + sy * (1 + sy))
    return 2 / (2 - A[0] / p1 - B[0] * ft / p2)


def sp_from_c(c, t90):
    """Practical salinity from conductivity c (mS/cm) at t90 (°C), p = 0."""
    t68 = t90 * 1.00024
    ft = (t68 - 15) / (1 + K * (t68 - 15))
    rt = (c / C3515) / _poly(C, t68)
    if rt < 0:
        return float("nan")
    x = math.sqrt(rt)
    sp = _poly(A, x) + ft * _poly(B, x)
    if sp < 2:
        hx, sy = 400 * rt, 10 * x
        p1, p2 = 1 + hx * (1.5 + hx), 1 + sy * (1 + sy * (1 + sy))
        sp = _hill_ratio(t90) * (sp - A[0] / p1 - B[0] * ft / p2)
    return sp


def c_from_sp(sp, t90):
    """The conductivity (mS/cm) with practical salinity sp at t90, p = 0."""
    lo, hi = 0.0, 80.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if sp_from_c(mid, t90) < sp:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def self_check():
    """Check values: UNESCO 1983 (R = 1 at 15 °C IPTS-68 is 35) and gsw
    3.6.16's SP_from_C (docs/units.md, "Check values")."""
    cases = [(C3515, 15 / 1.00024, 35.0), (1.0, 25, 0.492451), (15.0, 28, 8.176952),
             (0.1, 30, 0.041704), (50.0, 25, 32.733167), (4.0, 28, 1.984149)]
    return [(c, t, sp_from_c(c, t), want) for c, t, want in cases
            if abs(sp_from_c(c, t) - want) > 2e-6]
