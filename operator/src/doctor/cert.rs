//! What the doctor reads from a TLS Secret's certificate: when it expires and which names it
//! covers (PEM and X.509 parsing by `x509-parser`).
use x509_parser::extensions::GeneralName;
use x509_parser::pem::parse_x509_pem;

#[derive(Clone, Debug, PartialEq)]
pub struct CertInfo {
    /// Unix seconds.
    pub not_after: i64,
    /// DNS names of the subjectAltName extension.
    pub dns_names: Vec<String>,
}

/// The first certificate of a PEM chain (`tls.crt`), or why it cannot be read.
pub fn parse(pem: &[u8]) -> Result<CertInfo, String> {
    let (_, pem) = parse_x509_pem(pem).map_err(|e| format!("not a PEM certificate: {e}"))?;
    let cert = pem.parse_x509().map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let dns_names = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(d.to_string()),
                _ => None,
            })
            .collect(),
        _ => vec![],
    };
    Ok(CertInfo { not_after: cert.validity().not_after.timestamp(), dns_names })
}

/// Whether a certificate name (`*.example.com` matches one label) covers `domain`.
pub fn covers(names: &[String], domain: &str) -> bool {
    let domain = domain.to_ascii_lowercase();
    names.iter().any(|n| {
        let n = n.to_ascii_lowercase();
        match n.strip_prefix("*.") {
            Some(rest) => domain.split_once('.').is_some_and(|(_, d)| d == rest),
            None => n == domain,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_expiry_and_names_of_a_real_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["meet.example.com".into()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 1, 2);
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        let info = parse(pem.as_bytes()).unwrap();
        assert_eq!(info.dns_names, vec!["meet.example.com".to_string()]);
        assert_eq!(info.not_after, 1_925_078_400); // 2031-01-02T00:00:00Z
        assert!(parse(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").is_err());
        assert!(parse(b"hello").is_err());
    }

    #[test]
    fn wildcards_cover_one_label() {
        let names = vec!["*.example.com".to_string()];
        assert!(covers(&names, "meet.example.com"));
        assert!(!covers(&names, "a.meet.example.com"));
        assert!(!covers(&names, "example.com"));
        assert!(covers(&["Meet.Example.com".into()], "meet.example.com"));
    }
}
