//! Where the receipts go: `KASSA_PRINTER` parsed into a [`Destination`] ("parse, don't
//! validate"), and the bytes sent there through the `escpos` crate's drivers (blocking I/O;
//! the queue calls it on a blocking thread).
//!
//! | URL | printer |
//! | --- | --- |
//! | `tcp://host:9100` | a network printer (raw TCP; the port defaults to 9100) |
//! | `usb://VID:PID` | a USB printer by vendor and product id, in hex (`usb://04b8:0e15`); needs the `usb` build feature |
//! | `serial:///dev/ttyUSB0?baud=9600` | a serial printer (the baud rate defaults to 9600); needs the `serial` build feature |
//! | `file:///dev/usb/lp0` | a device file (the kernel's USB printer class driver), or any file |

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use escpos::driver::{Driver, FileDriver, NetworkDriver};

use crate::error::{Error, Result};

/// The raw TCP port of network receipt printers.
pub const TCP_PORT_DEFAULT: u16 = 9100;
pub const BAUD_DEFAULT: u32 = 9600;
/// How long a printer may take to accept a connection or a write.
pub const PRINTER_TIMEOUT: Duration = Duration::from_secs(5);

/// A receipt printer's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Tcp { host: String, port: u16 },
    Usb { vendor_id: u16, product_id: u16 },
    Serial { path: PathBuf, baud: u32 },
    File { path: PathBuf },
}

/// What every refusal of a printer URL ends with.
const FORMS: &str = "tcp://host:9100, usb://VID:PID, serial:///dev/ttyUSB0?baud=9600 or \
                     file:///dev/usb/lp0";

fn bad(url: &str, why: impl fmt::Display) -> Error {
    Error::Invalid(format!("printer {url:?}: {why}; expected {FORMS}"))
}

impl FromStr for Destination {
    type Err = Error;

    fn from_str(url: &str) -> Result<Self> {
        let url = url.trim();
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad(url, "no scheme"))?;
        match scheme.to_ascii_lowercase().as_str() {
            "tcp" => tcp(url, rest),
            "usb" => usb(url, rest),
            "serial" => serial(url, rest),
            "file" => {
                if !rest.starts_with('/') || rest.len() < 2 {
                    return Err(bad(
                        url,
                        "a file needs an absolute path (file:///dev/usb/lp0)",
                    ));
                }
                Ok(Destination::File {
                    path: PathBuf::from(rest),
                })
            }
            other => Err(bad(url, format!("unknown scheme {other:?}"))),
        }
    }
}

fn tcp(url: &str, rest: &str) -> Result<Destination> {
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        // An IPv6 literal is bracketed: tcp://[::1]:9100.
        Some((host, port)) if !port.contains(']') => {
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad(url, format!("{port:?} is not a port")))?;
            (host, port)
        }
        _ => (rest, TCP_PORT_DEFAULT),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(['/', '?', '@', ' ']) {
        return Err(bad(url, "no host"));
    }
    Ok(Destination::Tcp {
        host: host.to_owned(),
        port,
    })
}

fn usb(url: &str, rest: &str) -> Result<Destination> {
    let hex = |part: &str| {
        let part = part.trim_start_matches("0x");
        (!part.is_empty() && part.len() <= 4)
            .then(|| u16::from_str_radix(part, 16).ok())
            .flatten()
            .ok_or_else(|| bad(url, format!("{part:?} is not a 4-digit hex id")))
    };
    let (vendor, product) = rest
        .trim_end_matches('/')
        .split_once(':')
        .ok_or_else(|| bad(url, "a USB printer is VID:PID in hex"))?;
    Ok(Destination::Usb {
        vendor_id: hex(vendor)?,
        product_id: hex(product)?,
    })
}

fn serial(url: &str, rest: &str) -> Result<Destination> {
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if !path.starts_with('/') || path.len() < 2 {
        return Err(bad(
            url,
            "a serial port needs its device path (serial:///dev/ttyUSB0)",
        ));
    }
    let mut baud = BAUD_DEFAULT;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("baud", value)) => {
                baud = value
                    .parse::<u32>()
                    .ok()
                    .filter(|b| (300..=921_600).contains(b))
                    .ok_or_else(|| bad(url, format!("baud {value:?} is not 300 to 921600")))?;
            }
            _ => return Err(bad(url, format!("unknown option {pair:?} (only baud=)"))),
        }
    }
    Ok(Destination::Serial {
        path: PathBuf::from(path),
        baud,
    })
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Tcp { host, port } if host.contains(':') => {
                write!(f, "tcp://[{host}]:{port}")
            }
            Destination::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Destination::Usb {
                vendor_id,
                product_id,
            } => write!(f, "usb://{vendor_id:04x}:{product_id:04x}"),
            Destination::Serial { path, baud } => {
                write!(f, "serial://{}?baud={baud}", path.display())
            }
            Destination::File { path } => write!(f, "file://{}", path.display()),
        }
    }
}

/// The paper roll's width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Paper {
    /// 58 mm: 32 characters a line in font A.
    Mm58,
    /// 80 mm: 48 characters a line in font A.
    #[default]
    Mm80,
}

impl Paper {
    pub fn chars_per_line(self) -> usize {
        match self {
            Paper::Mm58 => 32,
            Paper::Mm80 => 48,
        }
    }
}

impl FromStr for Paper {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().trim_end_matches("mm").trim() {
            "58" => Ok(Paper::Mm58),
            "80" => Ok(Paper::Mm80),
            other => Err(Error::Invalid(format!(
                "paper width {other:?}: a receipt printer takes 58 or 80 (mm)"
            ))),
        }
    }
}

/// Why a printer did not take a document.
fn failed(destination: &Destination, err: impl fmt::Display) -> Error {
    Error::Printer(format!("printer {destination}: {err}"))
}

/// Sends `bytes` to the printer at `destination` (blocking: call it on a blocking thread).
pub fn send(destination: &Destination, bytes: &[u8]) -> Result<()> {
    let fail = |e: escpos::errors::PrinterError| failed(destination, e);
    match destination {
        Destination::Tcp { host, port } => {
            let addr = resolve(host, *port).map_err(|e| failed(destination, e))?;
            let driver =
                NetworkDriver::open(&addr.ip().to_string(), addr.port(), Some(PRINTER_TIMEOUT))
                    .map_err(fail)?;
            driver.write(bytes).map_err(fail)?;
            driver.flush().map_err(fail)
        }
        Destination::File { path } => {
            let mut options = std::fs::OpenOptions::new();
            options.append(true).create(true);
            let driver = FileDriver::open_with_options(path, &options).map_err(fail)?;
            driver.write(bytes).map_err(fail)?;
            driver.flush().map_err(fail)
        }
        Destination::Usb {
            vendor_id,
            product_id,
        } => usb_send(destination, *vendor_id, *product_id, bytes),
        Destination::Serial { path, baud } => serial_send(destination, path, *baud, bytes),
    }
}

fn resolve(host: &str, port: u16) -> std::io::Result<SocketAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port).to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{host} has no address"),
        )
    })
}

#[cfg(feature = "usb")]
fn usb_send(destination: &Destination, vendor: u16, product: u16, bytes: &[u8]) -> Result<()> {
    let fail = |e: escpos::errors::PrinterError| failed(destination, e);
    let driver = escpos::driver::NativeUsbDriver::open(vendor, product).map_err(fail)?;
    driver.write(bytes).map_err(fail)?;
    driver.flush().map_err(fail)
}

#[cfg(not(feature = "usb"))]
fn usb_send(destination: &Destination, _: u16, _: u16, _: &[u8]) -> Result<()> {
    Err(failed(
        destination,
        "this build has no USB printing (build kassa-register with --features usb), or use \
         file:///dev/usb/lp0 through the kernel's printer driver",
    ))
}

#[cfg(feature = "serial")]
fn serial_send(
    destination: &Destination,
    path: &std::path::Path,
    baud: u32,
    bytes: &[u8],
) -> Result<()> {
    let fail = |e: escpos::errors::PrinterError| failed(destination, e);
    let driver = escpos::driver::SerialPortDriver::open(
        &path.to_string_lossy(),
        baud,
        Some(PRINTER_TIMEOUT),
    )
    .map_err(fail)?;
    driver.write(bytes).map_err(fail)?;
    driver.flush().map_err(fail)
}

#[cfg(not(feature = "serial"))]
fn serial_send(destination: &Destination, _: &std::path::Path, _: u32, _: &[u8]) -> Result<()> {
    Err(failed(
        destination,
        "this build has no serial printing (build kassa-register with --features serial)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<Destination> {
        url.parse()
    }

    #[test]
    fn every_printer_form_parses() {
        assert_eq!(
            parse("tcp://192.168.1.50:9100").unwrap(),
            Destination::Tcp {
                host: "192.168.1.50".into(),
                port: 9100
            }
        );
        assert_eq!(
            parse("tcp://printer.local").unwrap(),
            Destination::Tcp {
                host: "printer.local".into(),
                port: TCP_PORT_DEFAULT
            }
        );
        assert_eq!(
            parse("tcp://[::1]:9101").unwrap(),
            Destination::Tcp {
                host: "::1".into(),
                port: 9101
            }
        );
        assert_eq!(
            parse("usb://04b8:0e15").unwrap(),
            Destination::Usb {
                vendor_id: 0x04b8,
                product_id: 0x0e15
            }
        );
        assert_eq!(
            parse("serial:///dev/ttyUSB0?baud=19200").unwrap(),
            Destination::Serial {
                path: "/dev/ttyUSB0".into(),
                baud: 19200
            }
        );
        assert_eq!(
            parse("serial:///dev/ttyS0").unwrap(),
            Destination::Serial {
                path: "/dev/ttyS0".into(),
                baud: BAUD_DEFAULT
            }
        );
        assert_eq!(
            parse("file:///dev/usb/lp0").unwrap(),
            Destination::File {
                path: "/dev/usb/lp0".into()
            }
        );
    }

    #[test]
    fn a_parsed_printer_reads_back_as_its_url() {
        for url in [
            "tcp://10.0.0.9:9100",
            "tcp://[::1]:9100",
            "usb://04b8:0e15",
            "serial:///dev/ttyUSB0?baud=9600",
            "file:///dev/usb/lp0",
        ] {
            assert_eq!(parse(url).unwrap().to_string(), url);
        }
    }

    #[test]
    fn a_bad_printer_url_is_refused_with_the_forms_that_work() {
        for (url, why) in [
            ("192.168.1.50:9100", "no scheme"),
            ("lpt://1", "unknown scheme"),
            ("tcp://:9100", "no host"),
            ("tcp://host:0", "not a port"),
            ("tcp://host:99999", "not a port"),
            ("usb://04b8", "VID:PID"),
            ("usb://xyz:0e15", "hex id"),
            ("usb://04b80:0e15", "hex id"),
            ("serial://ttyUSB0", "device path"),
            ("serial:///dev/ttyUSB0?baud=fast", "baud"),
            ("serial:///dev/ttyUSB0?parity=even", "unknown option"),
            ("file://lp0", "absolute path"),
        ] {
            let err = parse(url).unwrap_err().to_string();
            assert!(err.contains(why), "{url}: {err}");
            assert!(err.contains("tcp://host:9100"), "{url}: {err}");
        }
    }

    #[test]
    fn paper_is_58_or_80_mm() {
        assert_eq!("58".parse::<Paper>().unwrap(), Paper::Mm58);
        assert_eq!("80mm".parse::<Paper>().unwrap(), Paper::Mm80);
        assert_eq!(Paper::Mm58.chars_per_line(), 32);
        assert!("57"
            .parse::<Paper>()
            .unwrap_err()
            .to_string()
            .contains("58 or 80"));
    }
}
