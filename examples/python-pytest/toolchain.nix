# Written by build-toolchain.sh: the toolchain's NAR hash, and what went into it.
{
  narHash = "sha256-Ag5Bre1Z3oxLdA48NwkntKR3NBjTc1Re/jDTLKX3zUw=";
  packages = [
    "busybox-static=1:1.35.0-4+deb12u1+b1"
    "libbz2-1.0=1.0.8-5+b1"
    "libc6=2.36-9+deb12u14"
    "libcrypt1=1:4.4.33-2"
    "libdb5.3=5.3.28+dfsg2-1"
    "libexpat1=2.5.0-1+deb12u5"
    "libffi8=3.4.4-1"
    "libgdbm6=1.23-3"
    "liblzma5=5.4.1-1+deb12u2"
    "libncursesw6=6.4-4"
    "libnsl2=1.3.0-2"
    "libpython3.11-minimal=3.11.2-6+deb12u9"
    "libpython3.11-stdlib=3.11.2-6+deb12u9"
    "libreadline8=8.2-1.3"
    "libsqlite3-0=3.40.1-2+deb12u2"
    "libssl3=3.0.22-1~deb12u2"
    "libtinfo6=6.4-4"
    "libtirpc3=1.3.3+ds-1"
    "libuuid1=2.38.1-5+deb12u3"
    "media-types=10.0.0"
    "python3-attr=22.2.0-1"
    "python3-iniconfig=1.1.1-2"
    "python3-packaging=23.0-1"
    "python3-pluggy=1.0.0+repack-1"
    "python3-pytest=7.2.1-2"
    "python3.11-minimal=3.11.2-6+deb12u9"
    "zlib1g=1:1.2.13.dfsg-1+deb12u1"
  ];
}
