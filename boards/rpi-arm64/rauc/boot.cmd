# U-Boot boot script of an agri station (mkimage -T script makes boot.scr):
# A/B with boot counting, the variables RAUC's uboot backend reads and
# writes (BOOT_ORDER, BOOT_A_LEFT, BOOT_B_LEFT; docs/update.md). Each boot
# takes a try from the slot it boots; the station marks the slot good
# (tries back to 3) once it runs healthy, or bad when its health check
# fails; a slot out of tries is skipped, so the board falls back.
test -n "${BOOT_ORDER}" || setenv BOOT_ORDER "A B"
test -n "${BOOT_A_LEFT}" || setenv BOOT_A_LEFT 3
test -n "${BOOT_B_LEFT}" || setenv BOOT_B_LEFT 0

setenv bootpart
setenv raucslot
for BOOT_SLOT in "${BOOT_ORDER}"; do
  if test "x${bootpart}" != "x"; then
    # a slot is chosen: skip the rest
  elif test "x${BOOT_SLOT}" = "xA"; then
    if test ${BOOT_A_LEFT} -gt 0; then
      setexpr BOOT_A_LEFT ${BOOT_A_LEFT} - 1
      echo "agri: slot A, ${BOOT_A_LEFT} tries left"
      setenv bootpart 2
      setenv raucslot A
    fi
  elif test "x${BOOT_SLOT}" = "xB"; then
    if test ${BOOT_B_LEFT} -gt 0; then
      setexpr BOOT_B_LEFT ${BOOT_B_LEFT} - 1
      echo "agri: slot B, ${BOOT_B_LEFT} tries left"
      setenv bootpart 3
      setenv raucslot B
    fi
  fi
done

if test -n "${bootpart}"; then
  setenv bootargs "console=serial0,115200 console=tty1 root=/dev/mmcblk0p${bootpart} rootfstype=ext4 rootwait rw rauc.slot=${raucslot}"
  saveenv
else
  echo "agri: no slot has tries left: both get 3 again"
  setenv BOOT_A_LEFT 3
  setenv BOOT_B_LEFT 3
  saveenv
  reset
fi

# The kernel and initrd come from the chosen root file system, so a bundle
# updates them with the system. Debian's arm64 kernel is compressed.
setenv kernel_comp_addr_r 0x0a000000
setenv kernel_comp_size 0x04000000
load mmc 0:${bootpart} ${kernel_addr_r} /vmlinuz
load mmc 0:${bootpart} ${ramdisk_addr_r} /initrd.img
booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdt_addr}
