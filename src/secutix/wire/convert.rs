//! The conversion of the wire shapes into the domain model: the POS configuration, seasons, products and their performances, with implausible values left out and counted.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------------------------------------
// Conversion into the domain model
// ---------------------------------------------------------------------------------------------------------

impl RawPosConfig {
    /// The domain POS configuration.
    pub fn into_domain(self) -> PosConfig {
        let currency = self
            .currency_code
            .or_else(|| self.catalog_currencies.iter().find_map(|c| c.currency_code.clone()));
        let fraction_digits = self
            .catalog_currencies
            .iter()
            .find(|c| c.currency_code.is_none() || c.currency_code == currency)
            .and_then(|c| c.fraction_digit)
            .and_then(|d| u32::try_from(d).ok());
        let languages = self
            .language_list
            .into_iter()
            .filter_map(|s| s.0)
            .flat_map(|s| {
                s.split([',', ';', ' '])
                    .map(|x| x.trim().to_ascii_lowercase())
                    .collect::<Vec<_>>()
            })
            .filter(|s| !s.is_empty())
            .collect();
        PosConfig {
            pos_id: self.pos_id,
            time_zone: self.organization_time_zone,
            currency,
            fraction_digits,
            main_language: self.main_language.map(|l| l.to_ascii_lowercase()),
            languages,
        }
    }
}

impl RawSeason {
    /// The domain season (tariff tables flattened).
    pub fn into_domain(self, ctx: &ConvertCtx) -> Season {
        let mut subs = Vec::new();
        for cat in self.audience_categories {
            for sub in cat.audience_sub_categories {
                let Some(id) = sub.id else { continue };
                subs.push(AudienceSubCategory {
                    id,
                    code: sub.code,
                    name: sub.external_name,
                    kind: sub.audience_category_kind,
                    category_id: cat.id,
                    category_code: cat.code.clone(),
                    category_name: cat.external_name.clone(),
                });
            }
        }
        let price_levels = self
            .price_levels
            .into_iter()
            .filter_map(|p| {
                Some(PriceLevel {
                    id: p.id?,
                    code: p.code,
                    main_category: p.main_category,
                })
            })
            .collect();
        Season {
            id: self.id,
            code: self.code,
            state: self.state.as_deref().map(State::parse),
            start: self.start.map(|d| d.resolve(ctx.time_zone)),
            end: self.end.map(|d| d.resolve(ctx.time_zone)),
            name: self.external_name,
            audience_sub_categories: subs,
            price_levels,
        }
    }
}

pub(super) fn sale_periods(raw: Vec<RawSalePeriod>, ctx: &ConvertCtx) -> Vec<SalePeriod> {
    raw.into_iter()
        .map(|s| SalePeriod {
            start: s.start.map(|d| d.resolve(ctx.time_zone)),
            end: s.end.map(|d| d.resolve(ctx.time_zone)),
            sales_channel_code: s.sales_channel_code,
            sales_channel_id: s.sales_channel_id,
            sale_possible: s.sale_possible,
        })
        .collect()
}

impl RawProduct {
    /// The domain product. Fails only when an essential id is missing; the message names the field. Values
    /// that cannot be right ([`crate::catalog::plausible`]: a negative price, a start in year 9999, a
    /// negative or centuries-long duration) are left out and recorded in `flags`.
    pub fn into_domain(self, ctx: &ConvertCtx, flags: &mut Implausible) -> Result<Product, String> {
        use crate::catalog::plausible;
        let id = self.id.ok_or("the product has no id")?;
        let event = match self.event {
            None => None,
            Some(ev) => {
                let mut perfs = Vec::with_capacity(ev.performances.len());
                let mut seen = std::collections::HashSet::new();
                for (i, p) in ev.performances.into_iter().enumerate() {
                    let pid = p.id.ok_or_else(|| format!("event.performances[{i}] has no id"))?;
                    if !seen.insert(pid) {
                        continue; // the same performance twice in one product: keep the first
                    }
                    let at = format!("product {id}, performance {pid}");
                    let start = p.start.map(|d| d.resolve(ctx.time_zone));
                    let start = match start {
                        Some(t) if !plausible::date(t) => {
                            flags.flag(format!(
                                "{at}: start {} left out (a performance starts between {} and {})",
                                t.format("%Y-%m-%d %H:%M UTC"),
                                plausible::FIRST_YEAR,
                                plausible::END_YEAR - 1
                            ));
                            None
                        }
                        t => t,
                    };
                    let duration = match p.duration {
                        Some(d) if !plausible::duration(d) => {
                            flags.flag(format!(
                                "{at}: duration of {d} seconds left out (0 to {} days)",
                                plausible::MAX_DURATION_SECS / 86_400
                            ));
                            None
                        }
                        d => d,
                    };
                    let prices = p
                        .prices
                        .into_iter()
                        .filter_map(|pr| {
                            let amount = pr.amount?;
                            if !plausible::amount(amount) {
                                flags.flag(format!(
                                    "{at}: price of {amount} thousandths left out (a price is 0 to {} thousandths, \
                                     never negative)",
                                    plausible::MAX_AMOUNT
                                ));
                                return None;
                            }
                            Some(Price {
                                seat_category_id: pr.seat_cat_id,
                                institution_seat_category_id: pr.institution_seat_cat_id,
                                audience_sub_category_id: pr.aud_sub_cat_id,
                                price_level_id: pr.price_level_id,
                                amount,
                            })
                        })
                        .collect();
                    perfs.push(Performance {
                        id: pid,
                        code: p.code,
                        start,
                        duration_secs: duration,
                        state: p.state.as_deref().map(State::parse),
                        name: p.external_name,
                        description: p.external_description,
                        space_code: p.space_code,
                        space_name: p.space_external_name,
                        site_code: p.site_code,
                        site_name: p.site_external_name,
                        seat_categories: p
                            .seat_categories
                            .into_iter()
                            .filter_map(|s| {
                                Some(SeatCategory {
                                    id: s.id?,
                                    code: s.code,
                                    name: s.external_name,
                                    rank: s.rank,
                                })
                            })
                            .collect(),
                        prices,
                        sale_periods: sale_periods(p.sale_periods, ctx),
                        retained: false,
                    });
                }
                crate::catalog::sort_performances(&mut perfs);
                Some(Event {
                    activity_id: ev.activity_id,
                    activity_code: ev.activity_code,
                    activity_type: ev.activity_type,
                    activity_name: ev.activity_external_name,
                    alert_ratio: ev.alert_ratio,
                    minimum_age: ev.minimum_age,
                    language: ev.language,
                    performances: perfs,
                })
            }
        };
        Ok(Product {
            id,
            code: self.code,
            season_id: self.season_id,
            season_code: None,
            family: self.product_family_type.as_deref().map(ProductFamily::parse),
            family_sub_type: self.product_family_sub_type,
            state: self.state.as_deref().map(State::parse),
            name: self.external_name,
            short_name: self.short_name,
            description: self.external_description,
            images: Images {
                small: self.small_image_url,
                medium: self.medium_image_url,
                large: self.large_image_url,
                xlarge: self.xlarge_image_url,
                logo: self.logo,
            },
            detail_url: self.detail_url,
            sale_periods: sale_periods(self.sale_periods, ctx),
            sub_topic_codes: self
                .sub_topic_links
                .into_iter()
                .filter_map(|l| l.sub_topic_code.or(l.code))
                .collect(),
            event,
        })
    }
}
