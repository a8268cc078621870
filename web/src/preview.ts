// What a change would do, as the server previews it (validate_only, AIP-163), for the
// confirmation of a change that cannot be undone: who would notice, whose privilege drops.
import type { ImpactPreview } from "./gen/apitokens/v1/resources_pb";
import { h } from "./dom";
import { privilegeName, when } from "./format";

export function impact(preview: ImpactPreview | undefined): HTMLElement | null {
  if (!preview) return null;
  const drops = preview.privilegeDrops.map((d) =>
    h(
      "li",
      null,
      d.description || `token ${d.tokenId.slice(0, 8)}`,
      `: ${privilegeName(d.before)} → ${d.after ? privilegeName(d.after) : "no longer usable"}`,
    ),
  );
  const used = preview.recentlyUsed.map((a) => h("li", null, h("span", { class: "app-name" }, a.name), " · last seen ", when(a.lastSeenTime, "—")));
  const days = preview.usageWindowDays;
  return h(
    "div",
    { class: "impact" },
    drops.length > 0 ? [h("p", null, "Tokens whose privilege drops:"), h("ul", null, drops)] : null,
    used.length > 0
      ? [h("p", null, `Applications that used it in the last ${days} days, who would notice:`), h("ul", null, used)]
      : h("p", null, `No application used it in the last ${days} days.`),
  );
}
