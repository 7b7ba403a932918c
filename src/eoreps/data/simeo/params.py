"""Every physical parameter of SimEO in one frozen dataclass, each with the phenomenon it mimics.

SimEO is **synthetic**. Its parameters mimic the difficulty of real Sentinel data (clouds, speckle,
intra-class variety, mixed patches, no-data) and are fixed: they are never tuned to make a method win.
Change them only to study robustness, and then report the changed values (``write_simeo`` stores them
in ``meta.json``).

Per-class tuples follow :data:`SIMEO_CLASSES`; per-region tuples follow :data:`SIMEO_REGIONS`; S2
spectra follow :data:`eoreps.data.modalities.S2_L2A_BANDS` (B01 ... B12 without B10), in L2A
reflectance x 10,000.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from eoreps.digest import digest
from eoreps.errors import ConfigError

SIMEO_VERSION = 2
"""Bumped whenever the generator changes its output for a given seed (cache keys include it)."""

SIMEO_CLASSES: tuple[str, ...] = (
    "forest", "shrubland", "grassland", "wetland", "cropland", "urban", "barren", "water",
)
"""The eight DFC2020-like land-cover classes (DFC2020 minus snow/ice and savanna)."""

SIMEO_REGIONS: tuple[str, ...] = (
    "temperate_lowland", "forested_hills", "agricultural_plain", "coastal_urban", "semiarid_highland",
)
"""Regions with their own class priors and climate. The last one is the held-out ``shifted`` split."""

SPLITS: tuple[str, ...] = ("train", "val", "test", "shifted")
"""Split names; arrays store the index (``split`` int8 code) into this tuple."""

FUEL_TYPES: tuple[str, ...] = ("coal", "lignite", "gas", "oil")
"""Fuel classes of the power-plant multi-task set."""

_V = tuple[float, ...]


@dataclass(frozen=True)
class SimEOParams:
    """All parameters of the SimEO generator (units in brackets; see ``docs/simeo.md`` for the model).

    The comment above each field says what real phenomenon it mimics. Per-class tuples have 8 entries
    (:data:`SIMEO_CLASSES`), per-region tuples 5 (:data:`SIMEO_REGIONS`), spectra 12 (S2 L2A bands).
    """

    # ---------------------------------------------------------------- geometry
    #: Patch side [px] at 10 m GSD (32 px = 320 m, like a small BigEarthNet-style patch).
    patch_size: int = 32
    #: Margin [px] simulated around every patch and cropped away (fields are periodic over the padded
    #: grid, so this keeps opposite borders of a patch nearly independent). Scenes use at least
    #: ``scene_zone_corr_px``.
    pad_px: int = 5
    #: Side [px] of a power-plant patch (larger than a patch so plumes of 1-2 km fit).
    plant_size: int = 64

    # ---------------------------------------------------------------- regions and splits
    #: Probability that a patch comes from each region (the last, shifted, region is held out).
    region_weights: _V = (0.24, 0.2, 0.22, 0.19, 0.15)
    #: Index of the region that forms the ``shifted`` split (never in train/val/test).
    shifted_region: int = 4
    #: Fractions of the in-distribution patches that go to train / val / test.
    split_fractions: _V = (0.7, 0.15, 0.15)
    #: Class prior per region (rows: regions, columns: classes), like regional land-cover statistics.
    region_class_prior: tuple[_V, ...] = (
        (0.22, 0.05, 0.20, 0.05, 0.28, 0.10, 0.02, 0.08),  # temperate lowland
        (0.45, 0.10, 0.15, 0.03, 0.10, 0.05, 0.05, 0.07),  # forested hills
        (0.10, 0.04, 0.20, 0.06, 0.42, 0.10, 0.02, 0.06),  # agricultural plain
        (0.10, 0.05, 0.15, 0.12, 0.14, 0.26, 0.03, 0.15),  # coastal / urban
        (0.07, 0.30, 0.20, 0.01, 0.10, 0.07, 0.22, 0.03),  # semi-arid highland (shifted)
    )
    #: Latitude [deg N] per region; sets the sun elevation and hence terrain shading.
    region_latitude: _V = (48.0, 50.0, 45.0, 52.0, 38.0)
    #: Annual mean 2 m air temperature [deg C] per region (ERA5-like climate normals).
    region_temp_mean: _V = (10.0, 8.0, 12.0, 10.0, 16.0)
    #: Half the annual temperature range [K] per region (continentality).
    region_temp_amplitude: _V = (8.0, 9.0, 10.0, 6.0, 11.0)
    #: Mean relative humidity [%] per region (the shifted region is dry).
    region_humidity: _V = (75.0, 78.0, 70.0, 82.0, 48.0)
    #: Mean 10 m wind speed [m/s] per region (coasts are windy).
    region_wind: _V = (3.5, 3.0, 4.0, 5.5, 4.5)
    #: Base elevation [m] per region.
    region_elevation: _V = (150.0, 450.0, 80.0, 20.0, 1100.0)
    #: Standard deviation [m] of patch elevation within a region (regional relief).
    region_relief: _V = (60.0, 220.0, 25.0, 15.0, 300.0)
    #: Standard deviation [m] of elevation inside a patch (local hills, valleys).
    region_local_relief: _V = (6.0, 25.0, 2.5, 2.0, 30.0)
    #: Probability that a patch acquisition is cloudy, per region (before the seasonal modulation).
    region_cloud_prob: _V = (0.38, 0.42, 0.32, 0.48, 0.16)
    #: Phenology offset [days] per region (the warm shifted region greens up earlier).
    region_phenology_shift: _V = (0.0, 10.0, -5.0, 5.0, -35.0)
    #: Mean "district urbanisation" (0..1) per region: drives urban cover, NO2 column and ground NO2.
    region_urbanisation: _V = (0.25, 0.12, 0.2, 0.45, 0.15)
    #: Background tropospheric NO2 column [umol/m^2] per region (rural background pollution).
    region_no2_background: _V = (25.0, 18.0, 28.0, 35.0, 15.0)

    # ---------------------------------------------------------------- land cover
    #: Correlation length [px] of the per-class random fields: parcels, stands, fields of ~50-100 m.
    lc_corr_px: float = 5.0
    #: Amplitude of the per-class random fields relative to the log class weights (higher = more mixed).
    lc_field_amplitude: float = 1.3
    #: Dirichlet concentration of the per-patch class weights (small = patches dominated by a class).
    lc_concentration: float = 0.8
    #: Dirichlet concentration for large scenes (more classes per scene).
    scene_concentration: float = 6.0
    #: Correlation length [px] of the large-scale land-cover zones in scenes (districts of ~0.5 km).
    scene_zone_corr_px: float = 40.0
    #: Amplitude of the large-scale zones (makes distant scene parts differ, neighbours agree).
    scene_zone_amplitude: float = 1.5
    #: Affinity of each class for high terrain (added to its logit per standard deviation of elevation):
    #: water and wetland collect in low spots, forest, shrubs and bare rock occupy slopes and highlands.
    class_elevation_affinity: _V = (0.8, 0.5, 0.0, -1.0, -0.4, -0.3, 1.0, -1.4)
    #: Gain of a patch's district urbanisation on its urban prior (log scale per unit urbanisation).
    urban_urbanisation_gain: float = 3.0
    #: Block size [px] of the auxiliary land-cover product (coarser, like a 40 m map resampled to 10 m).
    landcover_aux_block: int = 4
    #: Fraction of auxiliary land-cover blocks that are wrong (WorldCover-like ~75-85 % accuracy).
    landcover_aux_error: float = 0.2
    #: Class an erroneous auxiliary block is usually confused with (indices into the classes).
    landcover_aux_confusion: tuple[int, ...] = (1, 2, 4, 2, 2, 6, 1, 3)
    #: Share of auxiliary errors that follow the confusion above (the rest are uniformly random).
    landcover_aux_confusion_share: float = 0.7
    #: Cover fraction from which a class counts as present in the multi-label target.
    multilabel_threshold: float = 0.1

    # ---------------------------------------------------------------- DEM
    #: Correlation length [px] of local relief.
    dem_corr_px: float = 14.0
    #: Weight of local relief (vs. the patch's elevation) in the class-elevation affinity.
    dem_local_weight: float = 0.8
    #: DEM measurement noise [m] (Copernicus DEM / SRTM vertical error).
    dem_noise_m: float = 1.5

    # ---------------------------------------------------------------- Sentinel-2 surface
    #: Peak-season S2 L2A reflectance x1e4 per class (rows) and band (columns), textbook-like spectra:
    #: the red edge and NIR plateau of vegetation, flat bright urban, bright SWIR of bare soil, dark water.
    s2_peak: tuple[_V, ...] = (
        (230, 280, 520, 290, 820, 2200, 2650, 2850, 2950, 2000, 1450, 680),  # forest
        (350, 450, 700, 700, 1150, 1900, 2200, 2350, 2450, 1650, 2350, 1500),  # shrubland
        (300, 380, 700, 520, 1150, 2500, 3000, 3200, 3300, 2250, 2250, 1250),  # grassland
        (280, 350, 580, 450, 850, 1700, 2000, 2100, 2150, 1450, 1300, 700),  # wetland
        (280, 350, 750, 380, 1200, 3000, 3700, 3900, 4000, 2750, 2200, 1100),  # cropland
        (900, 1050, 1200, 1300, 1450, 1650, 1800, 1900, 1950, 1350, 2100, 1850),  # urban
        (1000, 1250, 1600, 1900, 2150, 2350, 2500, 2600, 2700, 1850, 3300, 2700),  # barren
        (450, 500, 550, 350, 280, 220, 200, 180, 170, 120, 90, 70),  # water
    )
    #: Dormant-season spectra (leaf-off forest, dry grass, bare cropland soil); equal to the peak
    #: spectra for non-vegetated classes.
    s2_dormant: tuple[_V, ...] = (
        (300, 380, 550, 500, 800, 1500, 1750, 1850, 1950, 1300, 1700, 1000),  # forest
        (380, 500, 750, 850, 1200, 1700, 1900, 2000, 2100, 1400, 2600, 1800),  # shrubland
        (350, 450, 750, 800, 1150, 1800, 2100, 2250, 2350, 1600, 2600, 1700),  # grassland
        (300, 380, 550, 550, 800, 1200, 1400, 1450, 1500, 1000, 1400, 900),  # wetland
        (700, 900, 1200, 1450, 1650, 1850, 2000, 2100, 2200, 1500, 2900, 2300),  # cropland
        (900, 1050, 1200, 1300, 1450, 1650, 1800, 1900, 1950, 1350, 2100, 1850),  # urban
        (1000, 1250, 1600, 1900, 2150, 2350, 2500, 2600, 2700, 1850, 3300, 2700),  # barren
        (450, 500, 550, 350, 280, 220, 200, 180, 170, 120, 90, 70),  # water
    )
    #: Day of year of peak greenness per class (0 for classes without phenology).
    phenology_peak_doy: _V = (190.0, 150.0, 160.0, 200.0, 185.0, 0.0, 0.0, 0.0)
    #: Exponent sharpening the seasonal greenness curve (crops green up and are harvested quickly).
    phenology_sharpness: _V = (1.0, 1.0, 1.5, 1.0, 3.0, 1.0, 1.0, 1.0)
    #: Per-patch jitter [days] of the phenology (crop calendars, species, micro-climate).
    phenology_jitter_days: _V = (12.0, 20.0, 20.0, 15.0, 35.0, 0.0, 0.0, 0.0)
    #: Whether a class has vegetation phenology (1) or not (0).
    phenology_active: _V = (1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0)
    #: Per-patch, per-class log-normal brightness spread: soils, stand density, roof materials.
    s2_patch_brightness_sd: float = 0.1
    #: Per-patch, per-class, per-band log-normal spectral-shape jitter (species, moisture, materials).
    s2_band_jitter_sd: float = 0.07
    #: Correlation length [px] of within-class texture (tree crowns, field heterogeneity, buildings).
    texture_corr_px: float = 1.5
    #: Per-class pixel-level log-brightness texture (urban and shrubland most heterogeneous, water least).
    class_texture_sd: _V = (0.12, 0.16, 0.08, 0.1, 0.08, 0.22, 0.1, 0.04)
    #: Pixel-level spread of greenness (vigour differences within a field or stand).
    green_texture_sd: float = 0.15
    #: Log-normal per-patch illumination spread (residual atmospheric correction / BRDF effects).
    illumination_sd: float = 0.06
    #: Strength of topographic shading (0: none, 1: Lambertian cos(i)/cos(sun zenith)).
    terrain_shading: float = 0.8
    #: Sun azimuth [deg from north] at the ~10:30 local Sentinel-2 overpass.
    sun_azimuth_deg: float = 150.0

    # ---------------------------------------------------------------- clouds and shadows (S2 only)
    #: Relative seasonal modulation of cloud probability (more clouds in winter).
    cloud_season_amplitude: float = 0.35
    #: Beta(a, b) parameters of the cloud cover fraction of a cloudy patch.
    cloud_cover_beta: _V = (1.1, 1.4)
    #: Correlation length [px] of cloud fields (cumulus of a few hundred metres).
    cloud_corr_px: float = 4.0
    #: Width of the soft cloud edge, in standard deviations of the cloud field (thin edges).
    cloud_edge_softness: float = 0.6
    #: Cloud-top reflectance x1e4 per band (bright, flat, lower in SWIR).
    cloud_spectrum: _V = (5200, 5300, 5300, 5300, 5400, 5500, 5600, 5600, 5600, 4200, 4000, 3000)
    #: Log-normal spread of cloud brightness per patch (thin vs. thick clouds).
    cloud_brightness_sd: float = 0.2
    #: Maximum thin-haze optical effect on cloudy patches (fraction of the cloud spectrum, blue-weighted).
    haze_max: float = 0.12
    #: Shadow displacement range [px] (cloud height x sun geometry).
    shadow_offset_px: _V = (3.0, 9.0)
    #: Fraction of direct light removed under a cloud shadow (diffuse light remains).
    shadow_darkening: float = 0.6
    #: Opacity above which a pixel counts as cloud or shadow in the ``cloud`` mask.
    cloud_mask_threshold: float = 0.2

    # ---------------------------------------------------------------- Sentinel-2 sensor
    #: Additive noise floor [reflectance x1e4] (dark-signal and quantisation noise).
    s2_noise_floor: float = 20.0
    #: Signal-proportional noise (photon noise, calibration), fraction of the reflectance.
    s2_noise_relative: float = 0.015
    #: Saturation value [reflectance x1e4]; values are clipped to [0, this].
    s2_saturation: float = 16000.0
    #: Probability that a patch lies at a tile/orbit edge and has a no-data (NaN) swath.
    s2_nodata_patch_prob: float = 0.04
    #: Largest no-data swath, as a fraction of the patch.
    s2_nodata_max_fraction: float = 0.5
    #: Probability that a pixel is defective (NaN in all bands).
    s2_bad_pixel_prob: float = 3e-4

    # ---------------------------------------------------------------- Sentinel-1
    #: Mean sigma0 [dB] (VV, VH) per class at 37 deg incidence: double bounce in cities, volume scattering
    #: in forests, specular reflection on calm water, dry bare soil dark.
    s1_mean_db: tuple[_V, ...] = (
        (-7.5, -13.0),  # forest
        (-9.5, -16.0),  # shrubland
        (-11.0, -18.5),  # grassland
        (-10.0, -17.5),  # wetland
        (-11.5, -19.5),  # cropland (plus phenology gain)
        (-4.5, -11.0),  # urban
        (-14.0, -23.0),  # barren
        (-21.0, -27.0),  # water (plus wind roughening)
    )
    #: sigma0 change [dB per degree] of incidence angle (steeper for smooth surfaces).
    s1_incidence_slope_db: _V = (-0.08, -0.12, -0.15, -0.15, -0.15, -0.05, -0.2, -0.35)
    #: Incidence angle range [deg] of Sentinel-1 IW swaths.
    s1_incidence_range_deg: _V = (30.0, 45.0)
    #: Gain [dB] (VV, VH) of fully green crops over bare fields (biomass, volume scattering).
    s1_crop_green_gain_db: _V = (1.5, 4.0)
    #: Water roughening by wind [dB per m/s above 3 m/s] (capillary waves), VV and VH.
    s1_water_wind_gain_db: _V = (1.6, 0.8)
    #: Soil-moisture proxy: dB per % relative humidity above 70 % for vegetated and bare land.
    s1_moisture_gain_db: float = 0.04
    #: Per-patch, per-class sigma0 spread [dB] (moisture, structure, orientation).
    s1_patch_sd_db: float = 1.0
    #: Pixel-level texture [dB] (sub-parcel structure).
    s1_texture_sd_db: float = 1.0
    #: Correlation of S1 texture with S2 texture (the same objects are seen by both sensors).
    s1_s2_texture_corr: float = 0.6
    #: Terrain effect [dB per degree of slope facing the sensor] (foreshortening).
    s1_terrain_gain_db: float = 0.25
    #: Noise-equivalent sigma zero [dB]: thermal noise floor added in linear power.
    s1_nesz_db: float = -25.0
    #: Equivalent number of looks of the multiplicative gamma speckle (S1 GRD IW ~ 4.4).
    s1_looks: float = 4.4
    #: Probability that an S1 patch has a no-data swath (GRD border noise removal).
    s1_nodata_patch_prob: float = 0.01

    # ---------------------------------------------------------------- weather
    #: Temperature lapse rate [K/m] (applied to elevation above the region's base).
    lapse_rate: float = -0.0065
    #: Urban heat island [K per unit urban cover].
    urban_heat_island: float = 2.0
    #: Synoptic temperature noise [K].
    temp_noise_sd: float = 3.0
    #: Humidity increase [%] per unit cloud cover (cloudy days are humid).
    humidity_cloud_gain: float = 20.0
    #: Humidity decrease [% per K] of temperature anomaly.
    humidity_temp_gain: float = 1.5
    #: Synoptic humidity noise [%].
    humidity_noise_sd: float = 8.0
    #: Shape of the gamma-distributed wind speed (Weibull-like, mean = region wind).
    wind_shape: float = 2.5

    # ---------------------------------------------------------------- NO2 column (coarse)
    #: Column increase [umol/m^2] per unit district urbanisation (traffic, industry upwind).
    no2_urbanisation_gain: float = 110.0
    #: Column increase [umol/m^2] per unit urban cover of the patch itself.
    no2_urban_gain: float = 25.0
    #: Relative seasonal amplitude (winter maximum: heating, shorter NO2 lifetime).
    no2_season_amplitude: float = 0.3
    #: Wind speed [m/s] that halves the column by dilution.
    no2_wind_scale: float = 8.0
    #: Log-normal retrieval error of the column (TROPOMI-like ~25 %).
    no2_retrieval_sd: float = 0.25
    #: Relative column gradient across one 5.5 km satellite pixel (550 px), per axis.
    no2_gradient_sd: float = 0.2

    # ---------------------------------------------------------------- ground-level NO2 target
    #: Rural baseline [ug/m^3].
    target_base: float = 4.0
    #: Increase [ug/m^3] per unit urban cover (local traffic).
    target_urban_gain: float = 28.0
    #: Increase [ug/m^3] per umol/m^2 of the true (noise-free) column.
    target_column_gain: float = 0.18
    #: Winter increase [ug/m^3] (inversions, heating).
    target_winter_gain: float = 6.0
    #: Decrease [ug/m^3 per m/s] of wind speed (ventilation).
    target_wind_gain: float = 1.2
    #: Lowest mean [ug/m^3].
    target_min: float = 1.0
    #: Heteroscedastic noise std = base + relative * mean + urban * urban cover [ug/m^3]; this is the
    #: base (instrument and representativeness error everywhere).
    target_noise_base: float = 1.0
    #: Noise std per unit of the mean (errors grow with the concentration).
    target_noise_relative: float = 0.1
    #: Noise std per unit urban cover (street canyons and local sources make urban stations noisier).
    target_noise_urban: float = 8.0

    # ---------------------------------------------------------------- power plants
    #: Probability of each fuel type.
    fuel_weights: _V = (0.3, 0.15, 0.4, 0.15)
    #: Median installed capacity [MW] per fuel.
    fuel_capacity_mw: _V = (700.0, 1500.0, 450.0, 250.0)
    #: Log-normal spread of the installed capacity.
    capacity_sd: float = 0.5
    #: Mean capacity factor per fuel when running (lignite base load, oil peakers).
    fuel_capacity_factor: _V = (0.55, 0.75, 0.45, 0.25)
    #: Probability that the plant is off at acquisition time.
    fuel_off_prob: _V = (0.15, 0.08, 0.25, 0.45)
    #: Probability of wet (plume-forming) cooling per fuel.
    fuel_wet_cooling_prob: _V = (0.75, 0.9, 0.45, 0.3)
    #: Plume length [px] at 100 MW in ideal condensing weather; grows with sqrt(power).
    plume_length_px: float = 9.0
    #: Plume half-width [px] at the source.
    plume_width_px: float = 1.5
    #: Growth of the plume half-width per px of distance downwind (turbulent spreading).
    plume_spread: float = 0.22
    #: Peak plume opacity (condensed water droplets, cloud-like).
    plume_opacity: float = 0.85
    #: Opacity above which a pixel belongs to the plume mask.
    plume_mask_threshold: float = 0.15
    #: Site (industrial area) side [px] per fuel.
    site_size_px: _V = (12.0, 14.0, 8.0, 10.0)
    #: Dark coal-pile reflectance x1e4 (all bands) on coal and lignite sites.
    coal_pile_reflectance: float = 450.0
    #: Probability of natural clouds on a plant patch, relative to the region's.
    plant_cloud_factor: float = 0.5

    # ---------------------------------------------------------------- helpers
    def __post_init__(self) -> None:
        k, r, b = len(SIMEO_CLASSES), len(SIMEO_REGIONS), 12
        checks: dict[str, tuple[Any, int]] = {
            "region_weights": (self.region_weights, r), "region_class_prior": (self.region_class_prior, r),
            "region_latitude": (self.region_latitude, r), "region_temp_mean": (self.region_temp_mean, r),
            "region_temp_amplitude": (self.region_temp_amplitude, r),
            "region_humidity": (self.region_humidity, r), "region_wind": (self.region_wind, r),
            "region_elevation": (self.region_elevation, r), "region_relief": (self.region_relief, r),
            "region_local_relief": (self.region_local_relief, r),
            "region_cloud_prob": (self.region_cloud_prob, r),
            "region_phenology_shift": (self.region_phenology_shift, r),
            "region_urbanisation": (self.region_urbanisation, r),
            "region_no2_background": (self.region_no2_background, r),
            "class_elevation_affinity": (self.class_elevation_affinity, k),
            "landcover_aux_confusion": (self.landcover_aux_confusion, k),
            "s2_peak": (self.s2_peak, k), "s2_dormant": (self.s2_dormant, k),
            "phenology_peak_doy": (self.phenology_peak_doy, k),
            "phenology_sharpness": (self.phenology_sharpness, k),
            "phenology_jitter_days": (self.phenology_jitter_days, k),
            "phenology_active": (self.phenology_active, k), "class_texture_sd": (self.class_texture_sd, k),
            "cloud_spectrum": (self.cloud_spectrum, b), "s1_mean_db": (self.s1_mean_db, k),
            "s1_incidence_slope_db": (self.s1_incidence_slope_db, k),
            "fuel_weights": (self.fuel_weights, len(FUEL_TYPES)),
            "fuel_capacity_mw": (self.fuel_capacity_mw, len(FUEL_TYPES)),
            "fuel_capacity_factor": (self.fuel_capacity_factor, len(FUEL_TYPES)),
            "fuel_off_prob": (self.fuel_off_prob, len(FUEL_TYPES)),
            "fuel_wet_cooling_prob": (self.fuel_wet_cooling_prob, len(FUEL_TYPES)),
            "site_size_px": (self.site_size_px, len(FUEL_TYPES)),
        }
        for name, (value, n) in checks.items():
            if len(value) != n:
                raise ConfigError(f"SimEOParams.{name}: expected {n} entries, got {len(value)}")
        for name in ("region_class_prior", "s2_peak", "s2_dormant"):
            width = b if name.startswith("s2") else k
            if any(len(row) != width for row in getattr(self, name)):
                raise ConfigError(f"SimEOParams.{name}: every row needs {width} entries")
        if self.patch_size < 4 or self.plant_size < 16:
            raise ConfigError("SimEOParams: patch_size must be >= 4 and plant_size >= 16 pixels")
        if not 0 <= self.shifted_region < r:
            raise ConfigError(f"SimEOParams.shifted_region: must be in 0..{r - 1}")
        if abs(sum(self.split_fractions) - 1.0) > 1e-6 or len(self.split_fractions) != 3:
            raise ConfigError("SimEOParams.split_fractions: three fractions (train, val, test) summing to 1")
        if not 0 < self.multilabel_threshold <= 1 / len(SIMEO_CLASSES):
            # the dominant class always has >= 1/K cover, so it is always among the multi-labels
            raise ConfigError(f"SimEOParams.multilabel_threshold: must be in (0, {1 / len(SIMEO_CLASSES)}]")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SimEOParams:
        """Inverse of :meth:`to_dict`; unknown keys raise a one-line :class:`ConfigError`."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"SimEOParams: unknown parameter(s) {', '.join(unknown)}")

        def tup(v: Any) -> Any:
            return tuple(tup(x) for x in v) if isinstance(v, list | tuple) else v

        return cls(**{k: tup(v) for k, v in d.items()})

    def digest(self) -> str:
        """Short stable hash of all parameters (used in cache keys)."""
        return digest(self.to_dict())
