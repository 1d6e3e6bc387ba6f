/**
 * Resolves a language name to the factory that starts its kernel: an installed Jupyter kernelspec
 * when the language table finds one, else the language's built-in driver. Kernelspecs are scanned
 * lazily and again whenever a lookup misses, so kernels installed while the agent runs are found.
 */
import type { Logger } from "../log.js";
import type { KernelFactory } from "./kernel.js";
import { jupyterFactory } from "./jupyter/jupyter-kernel.js";
import { findKernelSpecs, jupyterDataDirs, type KernelSpec } from "./jupyter/kernelspecs.js";
import type { BuiltinDriver, LanguageEntry, LanguageTable } from "./languages.js";

/** The caller named a language the table does not know (→ invalid_argument). */
export class UnknownLanguageError extends Error {}
/** The language is known but nothing installed runs it (→ failed_precondition). */
export class LanguageUnavailableError extends Error {}

export interface ResolvedLanguage {
  readonly entry: LanguageEntry;
  readonly factory: KernelFactory;
  /** The kernelspec, when a Jupyter kernel runs the language. */
  readonly spec?: KernelSpec;
}

/** A built-in driver may say whether what it runs (bash, a JDK) is installed. */
export type BuiltinFactory = KernelFactory & { readonly available?: () => Promise<boolean> };

export interface CatalogOptions {
  readonly builtins: Readonly<Record<BuiltinDriver, BuiltinFactory>>;
  readonly dataDirs?: () => string[];
  readonly log?: Logger;
}

export class KernelCatalog {
  private specs: Promise<Map<string, KernelSpec>> | undefined;
  private readonly factories = new Map<KernelSpec, KernelFactory & { readonly spec: KernelSpec }>();

  constructor(
    readonly table: LanguageTable,
    private readonly options: CatalogOptions,
  ) {}

  private scan(): Promise<Map<string, KernelSpec>> {
    const dirs = (this.options.dataDirs ?? jupyterDataDirs)();
    this.specs = findKernelSpecs(dirs);
    return this.specs;
  }

  private async installedSpecs(rescan: boolean): Promise<Map<string, KernelSpec>> {
    return rescan || this.specs === undefined ? this.scan() : this.specs;
  }

  private static pick(entry: LanguageEntry, specs: ReadonlyMap<string, KernelSpec>): KernelSpec | undefined {
    for (const name of entry.kernelspecs) {
      const spec = specs.get(name);
      if (spec !== undefined) return spec;
    }
    return [...specs.values()].find((spec) => entry.kernelLanguages.includes(spec.language));
  }

  /** The entry for a language name as callers send it (case does not matter). */
  entry(language: string): LanguageEntry | undefined {
    return this.table.get(language.trim().toLowerCase());
  }

  async resolve(language: string): Promise<ResolvedLanguage> {
    const entry = this.entry(language);
    if (entry === undefined) {
      const available = await this.availableLanguages();
      throw new UnknownLanguageError(`unsupported language ${JSON.stringify(language)}: available languages are ${available.join(", ") || "none"}`);
    }
    const spec = KernelCatalog.pick(entry, await this.installedSpecs(false)) ?? KernelCatalog.pick(entry, await this.installedSpecs(true));
    if (spec !== undefined) return { entry, spec, factory: this.factoryFor(spec) };
    const builtin = entry.builtin === undefined ? undefined : this.options.builtins[entry.builtin];
    if (builtin !== undefined && (await this.builtinAvailable(builtin))) return { entry, factory: builtin };
    const installed = [...(await this.installedSpecs(false)).values()].map((s) => `${s.name} (${s.displayName})`);
    const wanted = `a Jupyter kernel (kernelspec ${entry.kernelspecs.join(" or ")})${builtin === undefined ? "" : ` or the ${builtin.description}`}`;
    throw new LanguageUnavailableError(
      `language ${JSON.stringify(language)} needs ${wanted}, and none is installed; installed kernels: ${installed.join(", ") || "none"}`,
    );
  }

  private async builtinAvailable(factory: BuiltinFactory): Promise<boolean> {
    return factory.available === undefined ? true : factory.available().catch(() => false);
  }

  private factoryFor(spec: KernelSpec): KernelFactory & { readonly spec: KernelSpec } {
    let factory = this.factories.get(spec);
    if (factory === undefined) {
      factory = jupyterFactory(spec, this.options.log);
      this.factories.set(spec, factory);
    }
    return factory;
  }

  /** Language names that something installed (or built in) can run, for error messages. */
  async availableLanguages(): Promise<string[]> {
    const specs = await this.installedSpecs(false);
    const builtins = new Map<BuiltinDriver, boolean>();
    for (const [name, factory] of Object.entries(this.options.builtins) as Array<[BuiltinDriver, BuiltinFactory]>) {
      builtins.set(name, await this.builtinAvailable(factory));
    }
    return [...this.table.entries()]
      .filter(([, entry]) => (entry.builtin !== undefined && builtins.get(entry.builtin) === true) || KernelCatalog.pick(entry, specs) !== undefined)
      .map(([name]) => name);
  }
}
