//! The catalogue as planned and built: products, performances and seasons as the domain model and as SecuTix's wire shapes.

#[allow(unused_imports)]
use super::*;

impl Generator {
    /// A generator for `opts`.
    pub fn new(opts: GeneratorOptions) -> Self {
        let tz = opts.time_zone;
        let local_now = opts.now.with_timezone(&tz);
        let first_year = if local_now.month() >= 9 {
            local_now.year()
        } else {
            local_now.year() - 1
        } - 1;
        let seasons = (0..3)
            .map(|k| {
                let y = first_year + k;
                let start = local_midnight(tz, y, 9, 1);
                let end = local_midnight(tz, y + 1, 9, 1) - chrono::Duration::minutes(1);
                SeasonPlan {
                    id: 10_228_000_000_000 + (opts.seed % 1000) as i64 * 1000 + i64::from(k),
                    code: format!("S{:02}{:02}", y % 100, (y + 1) % 100),
                    state: if k == 0 { State::Closed } else { State::Running },
                    start,
                    end,
                    label: format!("{y}-{}", y + 1),
                }
            })
            .collect();
        Self { opts, seasons }
    }

    /// The options.
    pub fn options(&self) -> &GeneratorOptions {
        &self.opts
    }

    /// The point of sale id of the venue (`posId`, the `pointOfSalesId` of availability calls).
    pub fn pos_id(&self) -> Id {
        100_000_000 + (self.opts.seed % 900_000_000) as i64
    }

    /// The `getPOSConfig` result (`{"statusCode":"success","posConfigData":{…}}`) as a JSON value.
    pub fn pos_config_result(&self) -> Value {
        json!({
            "statusCode": "success", "requestId": null, "statusDetail": null,
            "posConfigData": {
                "posId": self.pos_id(), "posCode": "WEB", "posNumber": 1, "posType": "INTERNET",
                "institCode": "SIMU", "organizationCode": "THV",
                "organizationName": {"translations": [{"locale": "fr", "value": SITE_FR}]},
                "organizationTimeZone": self.opts.time_zone.name(),
                "currencyCode": "EUR", "currencySymbol": "€",
                "catalogCurrencies": [{"currencyCode": "EUR", "fractionDigit": 2, "symbol": "€", "minAmount": 0}],
                "mainLanguage": "fr", "languageList": "fr,en",
                "salesChannelCode": SALES_CHANNEL_CODE, "salesChannelId": SALES_CHANNEL_ID,
                "seatSelectionMode": "BEST_AVAILABLE", "guestLoginAvailable": true, "testInstitution": true,
            }
        })
    }

    /// The POS configuration as secutix-sync keeps it.
    pub fn pos_config(&self) -> PosConfig {
        PosConfig {
            pos_id: Some(self.pos_id()),
            time_zone: Some(self.opts.time_zone.name().to_owned()),
            currency: Some("EUR".into()),
            fraction_digits: Some(2),
            main_language: Some("fr".into()),
            languages: vec!["fr".into(), "en".into()],
        }
    }

    /// The plan of product `index` (ids, season, dates, capacity).
    pub fn plan(&self, index: usize) -> ProductPlan {
        let o = &self.opts;
        let mut r = Rng::new(o.seed, STREAM_PLAN, index as u64);
        let season = match r.below(100) {
            0..8 => 0,
            8..80 => 1,
            _ => 2,
        };
        let genre = r.below(GENRES.len() as u64) as usize;
        let space = if GENRES[genre].code == "OP" {
            0
        } else {
            r.below(SPACES.len() as u64) as usize
        };
        let s = &self.seasons[season as usize];
        let perfs = o.performances_per_product;
        let gap_days = 1 + r.below(3) as i64;
        let span = gap_days * perfs.saturating_sub(1) as i64;
        let season_days = (s.end - s.start).num_days();
        let first_day = r.below((season_days - span - 1).max(1) as u64) as i64;
        let first = s.start.with_timezone(&o.time_zone).date_naive() + chrono::Duration::days(first_day);
        let id = 10_228_300_000_000 + index as i64 * 7919 + r.below(7919) as i64;
        let mut performances = Vec::with_capacity(perfs);
        for j in 0..perfs {
            let day = first + chrono::Duration::days(gap_days * j as i64);
            let hour = if day.weekday() == chrono::Weekday::Sun { 15 } else { 20 };
            let start = local_time(o.time_zone, day, hour);
            let n = (index * perfs + j) as i64;
            let pid = 10_228_400_000_000 + n * 13 + (hash3(o.seed, index as u64, j as u64) % 13) as i64;
            let state = match hash3(o.seed, pid as u64, 7) % 100 {
                0..2 => Some(State::Canceled),
                2..30 => Some(State::Running),
                _ => None,
            };
            let sale_end = (hash3(o.seed, pid as u64, 8) % 100 < 20).then(|| start - chrono::Duration::hours(2));
            performances.push(PlannedPerformance {
                id: pid,
                start,
                state,
                sale_end,
            });
        }
        let first_start = performances.first().map_or(s.start, |p| p.start);
        let last_start = performances.last().map_or(s.end, |p| p.start);
        let sale_start = (first_start - chrono::Duration::days(90)).min(s.start - chrono::Duration::days(60));
        ProductPlan {
            index,
            id,
            season,
            state: if r.chance(5) { State::Suspended } else { State::Running },
            alert_ratio: *r.pick(ALERT_RATIOS),
            capacity: SPACES[space].capacity,
            sale_start,
            sale_end: last_start,
            performances,
            genre,
            space,
        }
    }

    /// Product ids and plans of every product, in catalogue order.
    pub fn plans(&self) -> impl Iterator<Item = ProductPlan> + '_ {
        (0..self.opts.products).map(|i| self.plan(i))
    }

    /// Ids of season `season`: the base of its audience category ids (`base + 900 + k`), its tariff
    /// (sub-category) ids and its price level ids.
    pub(super) fn season_ids(&self, season: u32) -> (Id, Vec<Id>, Vec<Id>) {
        let base = 306_159_000 + i64::from(season) * 1000;
        let subs = (0..TARIFFS.len() as i64).map(|k| base + 78 + k).collect();
        (
            base,
            subs,
            vec![
                10_228_500_000_000 + i64::from(season) * 10 + 1,
                10_228_500_000_000 + i64::from(season) * 10 + 2,
            ],
        )
    }

    /// Season `k` as secutix-sync keeps it.
    pub(super) fn season_domain(&self, k: u32) -> Season {
        let s = &self.seasons[k as usize];
        let (base, subs, levels) = self.season_ids(k);
        let mut audience_sub_categories = Vec::new();
        for (c, cat) in AUDIENCE_CATEGORIES.iter().enumerate() {
            let (code, fr, en) = (&cat.code, &cat.fr, &cat.en);
            for &t in cat.tariffs {
                let Tariff {
                    code: tcode,
                    fr: tfr,
                    en: ten,
                    kind,
                    ..
                } = TARIFFS[t];
                audience_sub_categories.push(AudienceSubCategory {
                    id: subs[t],
                    code: Some(tcode.into()),
                    name: Translated::from_pairs([("fr", tfr), ("en", ten)]),
                    kind: Some(kind.into()),
                    category_id: Some(base + 900 + c as i64),
                    category_code: Some((*code).into()),
                    category_name: Translated::from_pairs([("fr", *fr), ("en", *en)]),
                });
            }
        }
        Season {
            id: Some(s.id),
            code: Some(s.code.clone()),
            state: Some(s.state.clone()),
            start: Some(s.start),
            end: Some(s.end),
            name: Translated::from_pairs([
                ("fr", format!("Saison {}", s.label).as_str()),
                ("en", format!("Season {}", s.label).as_str()),
            ]),
            audience_sub_categories,
            price_levels: vec![
                PriceLevel {
                    id: levels[0],
                    code: Some("STD".into()),
                    main_category: Some("OCCASIONAL".into()),
                },
                PriceLevel {
                    id: levels[1],
                    code: Some("ABO".into()),
                    main_category: Some("SUBSCRIBER".into()),
                },
            ],
        }
    }

    /// The season's own fields (without products) on the wire.
    pub(super) fn season_wire(&self, k: u32, style: Style) -> Value {
        let s = &self.seasons[k as usize];
        let (base, subs, levels) = self.season_ids(k);
        let tz = self.opts.time_zone;
        let cats: Vec<Value> = AUDIENCE_CATEGORIES
            .iter()
            .enumerate()
            .map(|(c, cat)| {
                let AudienceCategory {
                    code,
                    fr,
                    en,
                    main,
                    secondary,
                    tariffs,
                } = cat;
                json!({
                    "id": base + 900 + c as i64, "code": code, "mainCategory": main, "secondaryCategory": secondary,
                    "externalName": translations(&[("fr", Some(fr)), ("en", Some(en))]),
                    "audienceSubCategories": tariffs.iter().map(|&t| {
                        let Tariff { code: tcode, fr: tfr, en: ten, kind, .. } = TARIFFS[t];
                        json!({"id": subs[t], "code": tcode, "audienceCategoryKind": kind,
                               "externalName": translations(&[("fr", Some(tfr)), ("en", Some(ten))]),
                               "externalDescription": translations(&[("fr", None)]),
                               "requiredAudienceSubCategoryIds": [], "crossSeatCategory": false})
                    }).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "id": s.id, "code": s.code, "state": s.state.as_str(),
            "start": date(s.start, style, tz, false), "end": date(s.end, style, tz, false),
            "externalName": translations(&[("fr", Some(&format!("Saison {}", s.label))), ("en", Some(&format!("Season {}", s.label)))]),
            "audienceCategories": cats,
            "priceLevels": [
                {"id": levels[0], "code": "STD", "mainCategory": "OCCASIONAL", "reduction": null},
                {"id": levels[1], "code": "ABO", "mainCategory": "SUBSCRIBER", "reduction": 20},
            ],
            "topics": [],
        })
    }

    /// Product `index` as secutix-sync keeps it, and on the wire in `style`.
    pub(super) fn build(&self, index: usize, style: Style, want_wire: bool) -> (ProductPlan, Product, Value) {
        let plan = self.plan(index);
        let o = &self.opts;
        let tz = o.time_zone;
        let mut r = Rng::new(o.seed, STREAM_CONTENT, index as u64);
        let genre = &GENRES[plan.genre];
        let space = &SPACES[plan.space];
        let (head_fr, head_en) = *r.pick(TITLE_HEADS);
        let (tail_fr, tail_en) = *r.pick(TITLE_TAILS);
        let title_fr = format!("{head_fr}{tail_fr}");
        let title_en = format!("{head_en}{tail_en}");
        let has_en = r.chance(70);
        let code = format!("{}{:05}", genre.code, index % 100_000);
        let short_fr: String = title_fr.chars().take(15).collect();
        let short_en: String = title_en.chars().take(15).collect();
        let s1 = r.below(SENTENCES_FR.len() as u64) as usize;
        let s2 = (s1 + 1 + r.below(SENTENCES_FR.len() as u64 - 1) as usize) % SENTENCES_FR.len();
        let desc_fr = format!(
            "<p><strong>{}</strong> — {}</p>\n<p>{}</p>",
            html_escape(&title_fr),
            SENTENCES_FR[s1],
            SENTENCES_FR[s2]
        );
        let desc_en = format!(
            "<p><strong>{}</strong> — {}</p>\n<p>{}</p>",
            html_escape(&title_en),
            SENTENCES_EN[s1],
            SENTENCES_EN[s2]
        );
        let has_desc = r.chance(90);
        let has_images = r.chance(80);
        let img = |size: &str| format!("https://media.theatre-de-la-ville.example/img/{}-{size}.jpg", plan.id);
        let passculture = r.chance(10);
        let minimum_age = if genre.family {
            None
        } else {
            [None, None, Some(12), Some(16)][r.below(4) as usize]
        };
        let language = if genre.code == "CI" || genre.code == "OP" {
            Some("fr")
        } else {
            None
        };
        let (_, subs, levels) = self.season_ids(plan.season);
        let tariffs: Vec<usize> = (0..TARIFFS.len())
            .filter(|&t| !TARIFFS[t].children || genre.family)
            .collect();
        let subscriber_prices = r.chance(15);
        let duration = if r.chance(80) {
            Some(3600 + 1800 * r.below(4) as i64)
        } else {
            None
        };
        let seat_cat_base = 112_908_000 + i64::from(plan.season) * 100;

        let seat_categories: Vec<SeatCategory> = (0..space.seat_categories)
            .map(|c| SeatCategory {
                id: seat_cat_base + plan.space as i64 * 10 + c as i64,
                code: Some(format!("CAT{}", c + 1)),
                name: Translated::from_pairs([("fr", SEAT_CATEGORY_NAMES[c].0), ("en", SEAT_CATEGORY_NAMES[c].1)]),
                rank: Some(c as i64 + 1),
            })
            .collect();
        let round = |v: i64| (v + 250) / 500 * 500;
        let mut prices = Vec::new();
        let cells: Vec<(Option<Id>, i64, i64)> = if seat_categories.is_empty() {
            vec![(None, seat_cat_base + 99, 100)]
        } else {
            seat_categories
                .iter()
                .enumerate()
                .map(|(c, s)| (Some(s.id), s.id + 1_000_000, SEAT_CATEGORY_SHARE[c]))
                .collect()
        };
        for &(seat, institution_seat, share) in &cells {
            for &t in &tariffs {
                let amount = round(genre.base_price * share / 100 * TARIFFS[t].share / 100);
                prices.push(Price {
                    seat_category_id: seat,
                    institution_seat_category_id: Some(institution_seat),
                    audience_sub_category_id: Some(subs[t]),
                    price_level_id: subscriber_prices.then_some(levels[0]),
                    amount,
                });
                if subscriber_prices && t == 0 {
                    prices.push(Price {
                        seat_category_id: seat,
                        institution_seat_category_id: Some(institution_seat),
                        audience_sub_category_id: Some(subs[t]),
                        price_level_id: Some(levels[1]),
                        amount: round(amount * 80 / 100),
                    });
                }
            }
        }

        let name = tr_domain(&[("fr", Some(&title_fr)), ("en", has_en.then_some(title_en.as_str()))]);
        let space_name = Translated::from_pairs([("fr", space.fr), ("en", space.en)]);
        let site_name = Translated::from_pairs([("fr", SITE_FR)]);
        let mut performances = Vec::with_capacity(plan.performances.len());
        let mut perf_wire = Vec::new();
        for (j, planned) in plan.performances.iter().enumerate() {
            let (pid, start, state) = (&planned.id, &planned.start, &planned.state);
            let own_sale = planned.sale_end.map(|end| SalePeriod {
                start: Some(plan.sale_start),
                end: Some(end),
                sales_channel_code: Some(SALES_CHANNEL_CODE.into()),
                sales_channel_id: Some(SALES_CHANNEL_ID),
                sale_possible: Some(true),
            });
            let perf = Performance {
                id: *pid,
                code: Some(format!("{code}-{:02}", j + 1)),
                start: Some(*start),
                duration_secs: duration,
                state: state.clone(),
                name: name.clone(),
                description: Translated::default(),
                space_code: Some(space.code.into()),
                space_name: space_name.clone(),
                site_code: Some(SITE_CODE.into()),
                site_name: site_name.clone(),
                seat_categories: seat_categories.clone(),
                prices: prices.clone(),
                sale_periods: own_sale.into_iter().collect(),
                retained: false,
            };
            if want_wire {
                let seat_categories_wire: Vec<Value> = perf
                    .seat_categories
                    .iter()
                    .map(|s| {
                        obj! {
                            "id": s.id, "code": s.code, "rank": s.rank, "institutionCategoryId": s.id + 1_000_000,
                            "externalName": translations(&[
                                ("fr", s.name.0.get("fr").map(String::as_str)),
                                ("en", s.name.0.get("en").map(String::as_str)),
                            ]),
                        }
                    })
                    .collect();
                let prices_wire: Vec<Value> = perf
                    .prices
                    .iter()
                    .map(|p| {
                        obj! {
                            "institutionSeatCatId": p.institution_seat_category_id, "seatCatId": p.seat_category_id,
                            "audSubCatId": p.audience_sub_category_id, "amount": p.amount, "minQty": Value::Null,
                            "maxQty": Value::Null, "priceLevelId": p.price_level_id, "chargesAmounts": Value::Null,
                        }
                    })
                    .collect();
                let numbered = space.seat_categories > 0;
                perf_wire.push(obj! {
                    "id": perf.id, "code": perf.code, "physicalConfigurationId": Value::Null,
                    "logicalConfigurationId": 466_680_000 + plan.space as i64, "saleConfigurationId": Value::Null,
                    "rateTypeId": 306_159_280, "rateTypeCode": Value::Null, "ratesTableId": 858_268_731,
                    "chargesTableId": Value::Null,
                    "start": date(*start, style, tz, false),
                    "duration": duration, "spaceId": 1_000 + plan.space as i64, "spaceCode": space.code,
                    "siteCode": SITE_CODE, "kind": Value::Null, "kindExternalName": Value::Null,
                    "seatSelectionMode": if numbered { "BEST_AVAILABLE" } else { "NOT_NUMBERED" },
                    "breaksQuantity": Value::Null, "state": perf.state.as_ref().map(State::as_str),
                    "image": Value::Null, "forceNominativeTickets": Value::Null, "titling": Value::Null,
                    "blockComparisonEnabled": false, "numbered": numbered, "alwaysAllowIsolatedSeats": false,
                    "externalName": translations(&[("fr", Some(&title_fr)), ("en", has_en.then_some(title_en.as_str()))]),
                    "internalName": translations(&[("fr", Some(&title_fr))]),
                    "externalShortName": translations(&[("fr", Some(&short_fr))]),
                    "nameAddOn": translations(&[("fr", None)]),
                    "spaceExternalName": translations(&[("fr", Some(space.fr)), ("en", Some(space.en))]),
                    "siteExternalName": translations(&[("fr", Some(SITE_FR)), ("en", None)]),
                    "location": Value::Null, "match": Value::Null, "eventExternalName": Value::Null,
                    "externalDescription": translations(&[("fr", None)]),
                    "internalDescription": translations(&[("fr", None)]),
                    "saleCloseExceptions": empty(),
                    "seatCategories": seat_categories_wire,
                    "prices": prices_wire,
                    "charges": empty(), "comfortVariableValues": empty(), "performanceType": Value::Null,
                    "visitLanguageCode": Value::Null,
                    "maxSeatsPerOrder": numbered.then_some(10),
                    "itemIds": [perf.id + 606],
                    "performanceSocialNetworkLinks": empty(),
                    "salePeriods": perf.sale_periods.iter().map(|s| sale_period_wire(s, style, tz)).collect::<Vec<_>>(),
                });
            }
            performances.push(perf);
        }

        let product_sale = SalePeriod {
            start: Some(plan.sale_start),
            end: Some(plan.sale_end),
            sales_channel_code: Some(SALES_CHANNEL_CODE.into()),
            sales_channel_id: Some(SALES_CHANNEL_ID),
            sale_possible: Some(true),
        };
        let product = Product {
            id: plan.id,
            code: Some(code.clone()),
            season_id: None,
            season_code: None,
            family: Some(ProductFamily::SingleEntry),
            family_sub_type: Some("SIMPLE_TICKET".into()),
            state: Some(plan.state.clone()),
            name: name.clone(),
            short_name: tr_domain(&[("fr", Some(&short_fr)), ("en", has_en.then_some(short_en.as_str()))]),
            description: if has_desc {
                tr_domain(&[("fr", Some(&desc_fr)), ("en", has_en.then_some(desc_en.as_str()))])
            } else {
                Translated::default()
            },
            images: if has_images {
                Images {
                    small: Some(img("s")),
                    medium: Some(img("m")),
                    large: Some(img("l")),
                    xlarge: None,
                    logo: None,
                }
            } else {
                Images::default()
            },
            detail_url: None,
            sale_periods: vec![product_sale.clone()],
            sub_topic_codes: if passculture {
                vec!["PASSCULTURE".into()]
            } else {
                Vec::new()
            },
            event: Some(Event {
                activity_id: Some(10_228_317_615_200 + plan.genre as i64),
                activity_code: Some(genre.code.into()),
                activity_type: Some(genre.activity_type.into()),
                activity_name: Translated::from_pairs([("fr", genre.fr), ("en", genre.en)]),
                alert_ratio: Some(plan.alert_ratio),
                minimum_age,
                language: language.map(str::to_owned),
                performances,
            }),
        };
        if !want_wire {
            return (plan, product, Value::Null);
        }
        let event = obj! {
            "activityId": product.event.as_ref().and_then(|e| e.activity_id), "activityCode": genre.code,
            "activityType": genre.activity_type, "timeTolerance": Value::Null, "minimumAge": minimum_age,
            "language": language,
            "nameAddOn": translations(&[("fr", None)]),
            "activityExternalName": translations(&[("fr", Some(genre.fr)), ("en", Some(genre.en))]),
            "competitionTypeId": Value::Null, "alertRatio": plan.alert_ratio,
            "performances": perf_wire,
        };
        let description = if has_desc {
            translations(&[("fr", Some(&desc_fr)), ("en", has_en.then_some(desc_en.as_str()))])
        } else {
            translations(&[("fr", None), ("en", None)])
        };
        let sub_topics = if passculture {
            json!([{"subTopicCode": "PASSCULTURE", "subTopicId": 77}])
        } else {
            empty()
        };
        let wire = obj! {
            "id": product.id, "prevSeasonProductId": Value::Null, "code": code,
            "productFamilyType": "SINGLE_ENTRY", "productFamilySubType": "SIMPLE_TICKET", "audienceType": "ALL",
            "state": plan.state.as_str(),
            "logo": Value::Null,
            "smallImageUrl": product.images.small, "mediumImageUrl": product.images.medium,
            "largeImageUrl": product.images.large, "detailURL": Value::Null,
            "vatCodeId": 15_251, "ticketModelId": 466_679_292, "chargesTableId": Value::Null,
            "partnerContactNumber": Value::Null, "productTypeId": Value::Null, "allowQuestionnaire": false,
            "questionnaireId": Value::Null,
            "salePeriods": [sale_period_wire(&product_sale, style, tz)],
            "saleCloseExceptions": empty(),
            "externalName": translations(&[("fr", Some(&title_fr)), ("en", has_en.then_some(title_en.as_str()))]),
            "internalName": translations(&[("fr", Some(&title_fr))]),
            "shortName": translations(&[("fr", Some(&short_fr)), ("en", has_en.then_some(short_en.as_str()))]),
            "externalDescription": description,
            "optionAvailabilities": empty(), "crossSellProductLinks": empty(),
            "subTopicLinks": sub_topics,
            "productSocialNetworkLinks": empty(), "comfortVariableValues": empty(), "media": empty(),
            "event": event,
            "service": Value::Null, "goods": Value::Null, "pack": Value::Null, "seasonTicket": Value::Null,
            "transport": Value::Null, "pass": Value::Null, "membership": Value::Null, "hospitality": Value::Null,
            "minQuantity": Value::Null, "maxQuantity": Value::Null, "culturalContact": Value::Null,
            "waitingListAllowed": false, "partnerContactId": Value::Null,
        };
        (plan, product, wire)
    }

    /// Product `index` as secutix-sync keeps it (the parsers' output for it).
    pub fn product(&self, index: usize) -> Product {
        self.build(index, Style::Json, false).1
    }

    /// Season `k` (0 previous, 1 current, 2 next) as secutix-sync keeps it.
    pub fn season(&self, k: u32) -> Season {
        self.season_domain(k)
    }

    /// The whole catalogue as a domain value, in the order and shape the parsers stream it into a
    /// [`CollectSink`]: products season by season, each season after its products. Holds everything in
    /// memory: for tests and small catalogues.
    pub fn collect(&self) -> CollectSink {
        let mut sink = CollectSink::default();
        for k in 0..3u32 {
            for i in self.indices_of(k) {
                sink.products.push((Some(k), self.product(i)));
            }
            sink.seasons.push((k, self.season_domain(k)));
        }
        sink
    }

    pub(super) fn indices_of(&self, season: u32) -> impl Iterator<Item = usize> + '_ {
        (0..self.opts.products).filter(move |&i| self.plan(i).season == season)
    }
}
